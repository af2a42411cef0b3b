-- Sign-in. A wrong password (or unknown or disabled user) returns null rather
-- than raising, so the failure it records is committed and counts towards the
-- backoff (app_private.assert_sign_in_allowed); the gateway answers PRCRD for it.
create or replace function app_public.authenticate(username text, password text) returns app_public.jwt_token
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  found_user app_public.users;
begin
  perform app_private.assert_sign_in_allowed(authenticate.username);
  select * into found_user from app_public.users u
   where lower(u.username) = lower(authenticate.username) and not u.is_disabled;
  if app_private.password_matches(found_user.id, authenticate.password) then
    perform app_private.forget_sign_in_failures(authenticate.username);
    return app_private.jwt_for(found_user);
  end if;
  perform app_private.record_sign_in_failure(authenticate.username);
  return null;
end;
$$;
comment on function app_public.authenticate(text, text) is
  'Returns a token for the user with this username and password; null when they do not match.';
