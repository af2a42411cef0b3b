-- Users rename themselves only through app_public.change_username, which
-- throttles probes for taken usernames; an UPDATE's unique violation would
-- tell whether a name is taken as fast as one can ask.
revoke update (username) on app_public.users from app_user;
revoke execute on function app_public.change_username(text) from public;
grant execute on function app_public.change_username(text) to app_user;
