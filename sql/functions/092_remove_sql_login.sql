-- Removes a database login made by add_sql_login (`prompter sql-user remove`):
-- from the moment it commits its first step the login cannot connect, its open
-- sessions are ended, then the role and its mapping go. Only logins listed by
-- list_sql_logins qualify, so it cannot drop postgres, app_user or the like.
-- A procedure, called outside a transaction block, because it commits in
-- between; for the same reason it has no SET clause and qualifies every name.
create or replace procedure app_private.remove_sql_login(login text, inout ended_sessions int default null)
language plpgsql
as $$
begin
  if not exists (select from app_private.list_sql_logins() l where l.login = remove_sql_login.login) then
    raise exception 'There is no SQL login "%": only the logins sql-user list shows (made by sql-user add) can be removed, and nothing was changed.', login
      using errcode = 'PRNFD';
  end if;
  ended_sessions := 0;
  if exists (select from pg_catalog.pg_roles r where r.rolname = remove_sql_login.login) then
    execute pg_catalog.format('alter role %I nologin', login);
    -- Committed before the sessions are ended, so none can start in between.
    commit;
    select count(*) filter (where pg_catalog.pg_terminate_backend(a.pid, 5000)) into ended_sessions
      from pg_catalog.pg_stat_activity a where a.usename = remove_sql_login.login;
    -- One change to logins at a time (see add_sql_login).
    lock table app_private.sql_logins in share row exclusive mode;
    -- Revokes CONNECT on the database (and anything else granted since), which
    -- would otherwise keep the role from being dropped.
    execute pg_catalog.format('drop owned by %I', login);
    execute pg_catalog.format('drop role %I', login);
  end if;
  delete from app_private.sql_logins s where s.login = remove_sql_login.login;
end;
$$;
comment on procedure app_private.remove_sql_login(text, int) is
  'Ends the sessions of a read-only database login, then drops it and its mapping.';
