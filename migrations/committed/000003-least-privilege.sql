--! Previous: sha1:411ab94dfdf2242c5c09bbbb143804620e5ce1f4
--! Hash: sha1:6b608e38d9d057f40a96445b5f6ab325529c97da
--! Message: least privilege

-- Least privilege. The role that migrates (the owner, DATABASE_URL) need not be
-- a superuser: a plain role with CREATEROLE that owns the database is enough.
-- It may become every API role, so the worker exports as the requester; on
-- PostgreSQL 16 and later that takes an explicit SET option, and INHERIT off
-- keeps the owner from picking up their privileges by accident.
do $$
declare
  membership constant text := case when current_setting('server_version_num')::int >= 160000
    then ' with inherit false, set true' else '' end;
  login name;
begin
  execute 'grant app_anonymous, app_user, app_admin to current_user' || membership;
  -- The worker runs an export requested by a SQL login as that login, and
  -- `sql-user remove` ends its sessions: both need the login's privileges.
  for login in select l.login from app_private.sql_logins l join pg_roles r on r.rolname = l.login loop
    begin
      execute format('grant %I to current_user', login)
        || case when membership = '' then '' else ' with inherit true, set true' end;
    exception when insufficient_privilege then
      raise exception 'The owner "%" may not take over the SQL login "%". Have a superuser run once: grant % to % with admin option;',
        current_user, login, quote_ident(login), quote_ident(current_user) using errcode = 'PRPRV';
    end;
  end loop;
end
$$;

-- The functions this role creates from now on are executable by nobody until
-- granted (000001 set the same for the role that ran it).
alter default privileges revoke execute on functions from public;
alter default privileges in schema app_public revoke execute on functions from public;
alter default privileges in schema app_hidden revoke execute on functions from public;
alter default privileges in schema app_private revoke execute on functions from public;
