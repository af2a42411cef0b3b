-- The app user the current session acts for. A database login mapped by
-- `prompter sql-user add` always acts for its mapped user, and any other
-- read-only login (one whose user was deleted, or one mapped in another
-- database of the cluster) for nobody: a jwt claim set by hand never decides
-- who a login is. Everyone else (the gateway, the worker, which may `set role`
-- to a login) passes the user in the jwt.claims.user_id setting. A login of a
-- disabled user acts for nobody until the user is enabled again.
create or replace function app_public.current_user_id() returns bigint
language sql stable security definer
-- pg_temp last: otherwise a session's temporary table could stand in for pg_roles.
set search_path = pg_catalog, pg_temp
as $$
  select case
    when (select not r.rolsuper and pg_has_role(r.oid, 'app_reader', 'usage') from pg_catalog.pg_roles r where r.rolname = session_user)
      then (select l.user_id from app_private.sql_logins l join app_public.users u on u.id = l.user_id
             where l.login = session_user and not u.is_disabled)
    else nullif(current_setting('jwt.claims.user_id', true), '')::bigint
  end;
$$;
comment on function app_public.current_user_id() is
  'The id of the app user this session acts for, or null when anonymous.';
