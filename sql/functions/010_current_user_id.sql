-- The app user a session logged in as a database login acts for. A login mapped
-- by `prompter sql-user add` always acts for its mapped user, and any other
-- read-only login (one whose user was deleted, or one mapped in another
-- database of the cluster) for nobody: a jwt claim set by hand never decides
-- who a login is. A login of a disabled user acts for nobody until the user is
-- enabled again. Everyone else (the gateway, the worker, which may `set role`
-- to a login) passes the user in the jwt.claims.user_id setting. The database's
-- owner is a member of every login (to run their exports), so it is told apart
-- by owning the database, not by its memberships.
create or replace function app_public.current_login_user_id() returns bigint
language plpgsql stable security definer
-- pg_temp last: otherwise a session's temporary table could stand in for pg_roles.
set search_path = pg_catalog, pg_temp
as $$
begin
  if (select not r.rolsuper and pg_has_role(r.oid, 'app_reader', 'member') and r.oid <> d.datdba
        from pg_catalog.pg_roles r, pg_catalog.pg_database d
       where r.rolname = session_user and d.datname = current_database()) then
    return (select l.user_id from app_private.sql_logins l join app_public.users u on u.id = l.user_id
             where l.login = session_user and not u.is_disabled);
  end if;
  return nullif(current_setting('jwt.claims.user_id', true), '')::bigint;
end;
$$;
-- Defaults and policies call this on every row and statement of every write.
create or replace function app_public.current_user_id() returns bigint
language plpgsql stable
set search_path = pg_catalog
as $$
begin
  -- Membership, not usage: a login made by hand with NOINHERIT is a reader too once it sets its role.
  if not pg_has_role(session_user, 'app_reader', 'member') then
    return nullif(current_setting('jwt.claims.user_id', true), '')::bigint;
  end if;
  return app_public.current_login_user_id();
end;
$$;
comment on function app_public.current_user_id() is
  'The id of the app user this session acts for, or null when anonymous.';
