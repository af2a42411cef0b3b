-- While `prompter migrate` (or worker, or start) migrates, no SQL login may be
-- in the database: a login could otherwise hold a lock the migration needs
-- (graphile-migrate's advisory key, which anyone may take, or a table lock in
-- a transaction it keeps open) and fail or stall the migration and, behind it,
-- every API request. Called by the migrating process once it holds the
-- 'migrate' process lock: CONNECT is revoked from every SQL login of this
-- database (recorded in app_private.sql_login_lockouts, so it is given back
-- even if the migration crashes), that is committed, then their sessions are
-- ended. The owner may end only sessions of roles it is a member of
-- (add_sql_login makes it one); any other is counted in `unended_sessions`.
-- A procedure, called outside a transaction block, because it commits in
-- between; for the same reason it has no SET clause and qualifies every name.
create or replace procedure app_private.lock_out_sql_logins(inout ended_sessions int default null, inout unended_sessions int default null)
language plpgsql
as $$
declare
  locked_out name;
begin
  -- One change to logins at a time (see add_sql_login).
  lock table app_private.sql_logins in share row exclusive mode;
  for locked_out in
    insert into app_private.sql_login_lockouts (login)
    select l.login
      from app_private.list_sql_logins() l
     where exists (select from pg_catalog.pg_database d, pg_catalog.aclexplode(d.datacl) acl, pg_catalog.pg_roles r
                    where d.datname = pg_catalog.current_database() and r.rolname = l.login
                      and acl.grantee = r.oid and acl.privilege_type = 'CONNECT')
    on conflict (login) do nothing
    returning login
  loop
    execute pg_catalog.format('revoke connect on database %I from %I', pg_catalog.current_database(), locked_out);
  end loop;
  -- Committed before the sessions are ended, so none can start in between.
  commit;
  select count(*) filter (where a.may_signal and pg_catalog.pg_terminate_backend(a.pid, 5000)),
         count(*) filter (where not a.may_signal)
    into ended_sessions, unended_sessions
    from (select s.pid, pg_catalog.pg_has_role(s.usename, 'usage') as may_signal
            from pg_catalog.pg_stat_activity s
           where s.datname = pg_catalog.current_database() and s.pid <> pg_catalog.pg_backend_pid()
             and (s.usename in (select k.login from app_private.sql_login_lockouts k)
                  or s.usename in (select l.login from app_private.list_sql_logins() l))) a;
end;
$$;
comment on procedure app_private.lock_out_sql_logins(int, int) is
  'Keeps every SQL login out of the database while a migration runs: revokes CONNECT (recorded for restore_sql_login_access) and ends their sessions.';

-- Gives SQL logins their CONNECT back once no migration runs: called by the
-- migrating process itself, in the transaction that holds the 'migrate' lock,
-- when it is done, and by the worker's limits task, which so repairs what a
-- migration that crashed left behind. Returns the logins let back in.
create or replace function app_private.restore_sql_login_access() returns setof name
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  restored name;
begin
  -- A migration running in another session holds this row: its logins stay out.
  -- (The migrating session holds it itself, so it passes.)
  perform from app_private.process_locks where name = 'migrate' for update skip locked;
  if not found or not exists (select from app_private.sql_login_lockouts) then
    return;
  end if;
  lock table app_private.sql_logins in share row exclusive mode;
  for restored in delete from app_private.sql_login_lockouts returning login loop
    -- A login removed meanwhile stays removed.
    continue when not exists (select from pg_roles r where r.rolname = restored);
    execute format('grant connect on database %I to %I', current_database(), restored);
    return next restored;
  end loop;
end;
$$;
comment on function app_private.restore_sql_login_access() is
  'Gives SQL logins kept out by a migration their CONNECT back, unless a migration is still running.';
