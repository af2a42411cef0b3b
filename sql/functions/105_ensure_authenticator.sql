-- The gateway's only login (AUTH_DATABASE_URL), made or checked by
-- `npx prompter migrate` as the owner. It may become app_anonymous, app_user
-- and app_admin and nothing else, owns nothing, and by itself (NOINHERIT)
-- reads nothing but what the gateway's health checks and metrics need
-- (the app_hidden.gateway_* functions). An authenticator serves one database:
-- the NOLOGIN app roles are shared by every database of the cluster, so a
-- login with CONNECT on two of them would carry a token of one into the other.
create or replace function app_private.ensure_authenticator(login text, password text) returns void
language plpgsql volatile
-- The server stores a SCRAM verifier whatever the cluster's default.
set password_encryption = 'scram-sha-256'
set search_path = pg_catalog, pg_temp
as $$
declare
  existing pg_roles;
  other_memberships text;
  other_databases text;
  membership constant text := case when current_setting('server_version_num')::int >= 160000
    then ' with inherit false, set true' else '' end;
  gateway_function regprocedure;
begin
  if login is null or login !~ '^[a-z_][a-z0-9_]{0,62}$' or login like 'pg\_%' or login like 'app\_%' then
    raise exception 'The user of AUTH_DATABASE_URL must be 1 to 63 lower-case letters, digits or "_", and start neither with "pg_" nor "app_".'
      using errcode = 'PRLNM';
  end if;
  if login = current_user or login = session_user
     or exists (select from app_private.sql_logins l where l.login = ensure_authenticator.login) then
    raise exception 'AUTH_DATABASE_URL must name a role of its own, not the owner''s (DATABASE_URL) or a SQL login.'
      using errcode = 'PRAUT';
  end if;
  select * into existing from pg_roles r where r.rolname = login;
  if not found then
    execute format('create role %I login noinherit nosuperuser nocreatedb nocreaterole noreplication nobypassrls', login);
  else
    if existing.rolsuper or existing.rolinherit or existing.rolcreaterole or existing.rolcreatedb
       or existing.rolreplication or existing.rolbypassrls then
      raise exception 'The role "%" may do more than an authenticator should; AUTH_DATABASE_URL needs a plain NOINHERIT login (alter role % noinherit nocreaterole nocreatedb, or choose another name).',
        login, quote_ident(login) using errcode = 'PRAUT';
    end if;
    select string_agg(r.rolname, ', ' order by r.rolname) into other_memberships
      from pg_auth_members m join pg_roles r on r.oid = m.roleid
     where m.member = existing.oid and r.rolname not in ('app_anonymous', 'app_user', 'app_admin');
    if other_memberships is not null then
      raise exception 'The role "%" is a member of % as well; an authenticator may become app_anonymous, app_user and app_admin only.',
        login, other_memberships using errcode = 'PRAUT';
    end if;
    select string_agg(d.datname, ', ' order by d.datname) into other_databases
      from pg_database d, aclexplode(d.datacl) acl
     where acl.grantee = existing.oid and acl.privilege_type = 'CONNECT' and d.datname <> current_database();
    if other_databases is not null then
      raise exception 'The role "%" is the authenticator of database % already; give each prompter database an AUTH_DATABASE_URL user of its own.',
        login, other_databases using errcode = 'PRAUT';
    end if;
  end if;
  if coalesce(password, '') <> '' then
    begin
      execute format('alter role %I login password %L', login, password);
    exception when others then
      -- Re-raised without the statement as context: it holds the password.
      raise exception 'Could not set the password of "%": %', login, sqlerrm using errcode = sqlstate;
    end;
  end if;
  execute format('grant app_anonymous, app_user, app_admin to %I', login) || membership;
  -- Nobody else connects: only the owner, this login and the SQL logins
  -- (app_private.add_sql_login) are granted CONNECT, so the logins of other
  -- databases on the cluster, which share the NOLOGIN app roles, get nowhere
  -- here. And no API role creates temporary tables.
  execute format('revoke connect, temporary on database %I from public', current_database());
  execute format('grant connect on database %I to %I', current_database(), login);
  execute format('grant usage on schema app_hidden to %I', login);
  for gateway_function in
    select p.oid::regprocedure from pg_proc p
     where p.pronamespace = 'app_hidden'::regnamespace and p.proname like 'gateway\_%'
  loop
    execute format('grant execute on function %s to %I', gateway_function, login);
  end loop;
end;
$$;
comment on function app_private.ensure_authenticator(text, text) is
  'Creates (or checks) the gateway''s login role and grants it exactly what the gateway needs.';
