-- The app user the current session acts for. A database login mapped by
-- `prompter sql-user add` always acts for its mapped user: a jwt claim set by
-- hand cannot override the mapping. Everyone else (the gateway, the worker)
-- passes the user in the jwt.claims.user_id setting.
create or replace function app_public.current_user_id() returns bigint
language sql stable security definer
set search_path = pg_catalog
as $$
  select coalesce(
    (select user_id from app_private.sql_logins where login = session_user),
    nullif(current_setting('jwt.claims.user_id', true), '')::bigint
  );
$$;
comment on function app_public.current_user_id() is
  'The id of the app user this session acts for, or null when anonymous.';
