-- A read-only database login for analysts and BI tools, mapped to an app user
-- (`prompter sql-user add`). Connected as it, current_user_id() is that user,
-- so RLS shows exactly their rows; an admin user's login (app_auditor) reads
-- everyone's. Run by the operator as the database owner; nobody else may
-- execute it. Returns the generated password when none was given.
create or replace function app_private.add_sql_login(
  login text,
  username text,
  password text default null,
  is_admin boolean default false,
  connection_limit int default 5,
  statement_timeout text default '1min'
) returns table (mapped_user_id bigint, mapped_username text, generated_password text)
language plpgsql volatile
-- The server stores a SCRAM verifier whatever the cluster's default.
set password_encryption = 'scram-sha-256'
set search_path = pg_catalog, pg_temp
as $$
declare
  target app_public.users;
  timeout_ms bigint;
  idle_limit interval;
  transaction_limit interval;
  new_password text := add_sql_login.password;
begin
  -- One change to logins at a time: granting on the database rewrites its
  -- catalog row, which concurrent grants would fail on ("tuple concurrently updated").
  lock table app_private.sql_logins in share row exclusive mode;
  -- Lower case only, so the name means the same quoted or not (psql -U, SQL, URLs).
  if login is null or login !~ '^[a-z_][a-z0-9_]{0,62}$' or login like 'pg\_%' then
    raise exception 'A login name is 1 to 63 lower-case letters, digits or "_", starting with a letter or "_", and not with "pg_".'
      using errcode = 'PRLNM';
  end if;
  -- Never take over an existing role (postgres, app_user, authenticator, another login...).
  if exists (select from pg_roles r where r.rolname = add_sql_login.login) then
    raise exception 'There is already a database role named "%"; choose another login name.', login
      using errcode = 'PRLTK';
  end if;
  select * into target from app_public.users u where lower(u.username) = lower(add_sql_login.username);
  if not found then
    raise exception 'There is no user "%".', username using errcode = 'PRNFD';
  end if;
  -- A login sees what its user sees: only an admin's login reads everyone's data.
  if is_admin and not target.is_admin then
    raise exception 'User "%" is not an admin, so their login cannot read everyone''s data.', target.username
      using errcode = 'PRADM';
  end if;
  if connection_limit is null or connection_limit not between 1 and 100 then
    raise exception 'The connection limit must be from 1 to 100.' using errcode = 'PRARG';
  end if;
  begin
    timeout_ms := extract(epoch from statement_timeout::interval) * 1000;
  exception when data_exception then
    timeout_ms := null;
  end;
  if timeout_ms is null or timeout_ms not between 1000 and 86400000 then
    raise exception 'The statement timeout must be a duration from 1 second to 1 day, such as 30s or 5min.'
      using errcode = 'PRARG';
  end if;
  if new_password is null then
    -- 192 random bits, URL-safe so it can go into a connection string as it is.
    new_password := translate(encode(public.gen_random_bytes(24), 'base64'), '+/', '-_');
    generated_password := new_password;
  elsif length(new_password) < 12 then
    raise exception 'Choose a password of at least 12 characters, or let prompter generate one.'
      using errcode = 'PRWKP';
  end if;

  begin
    execute format('create role %I login inherit nosuperuser nocreatedb nocreaterole noreplication nobypassrls
                      connection limit %s password %L in role %I',
      login, connection_limit, new_password, case when is_admin then 'app_auditor' else 'app_reader' end);
  exception
    when duplicate_object then
      raise exception 'There is already a database role named "%"; choose another login name.', login
        using errcode = 'PRLTK';
    when reserved_name then
      raise exception 'The login name "%" is reserved by PostgreSQL; choose another.', login using errcode = 'PRLNM';
    when others then
      -- Re-raised without the failed statement as context: it holds the password.
      raise exception 'Could not create the login "%": %', login, sqlerrm using errcode = sqlstate;
  end;
  -- The limits as configured: the worker enforces them (enforce_sql_login_limits)
  -- whatever the login later sets for itself.
  insert into app_private.sql_logins (login, user_id, is_admin, statement_timeout)
  values (add_sql_login.login, target.id, add_sql_login.is_admin, make_interval(secs => timeout_ms / 1000.0))
  returning idle_in_transaction_timeout, sql_logins.transaction_timeout into idle_limit, transaction_limit;
  -- Also the defaults the login starts each session with, so PostgreSQL itself
  -- stops a runaway query or a transaction a BI tool leaves open.
  execute format('alter role %I set statement_timeout = %L', login, timeout_ms || 'ms');
  execute format('alter role %I set idle_in_transaction_session_timeout = %L', login,
    (extract(epoch from idle_limit) * 1000)::bigint || 'ms');
  -- PostgreSQL 17+ ends a transaction older than this itself; elsewhere only the worker does.
  if current_setting('server_version_num')::int >= 170000 then
    execute format('alter role %I set transaction_timeout = %L', login,
      (extract(epoch from transaction_limit) * 1000)::bigint || 'ms');
  end if;
  -- Explicit, so it survives `revoke connect on database ... from public`; it also
  -- marks the database the login belongs to (see list_sql_logins).
  -- While a migration runs, logins stay out (app_private.lock_out_sql_logins):
  -- this one is let in with the others when it ends.
  perform from app_private.process_locks where name = 'migrate' for update skip locked;
  if found then
    execute format('grant connect on database %I to %I', current_database(), login);
  else
    insert into app_private.sql_login_lockouts (login) values (add_sql_login.login);
  end if;
  -- What every role gets through PUBLIC would still let a login write temporary
  -- tables. No prompter role uses them, so close them here, in the database the
  -- login is for (a database cloned from a template does not inherit the
  -- template's database privileges). Large objects too go through PUBLIC, but
  -- only the functions' owner (a superuser) can revoke them: see the README.
  execute format('revoke temporary on database %I from public', current_database());
  -- The owner (who runs the worker and this command) may become the login, to
  -- run its exports as it, and holds its privileges, to cancel its statements
  -- past its limits (enforce_sql_login_limits) and end its sessions.
  execute format('grant %I to current_user', login)
    || case when current_setting('server_version_num')::int >= 160000 then ' with inherit true, set true' else '' end;

  mapped_user_id := target.id;
  mapped_username := target.username;
  return next;
end;
$$;
comment on function app_private.add_sql_login(text, text, text, boolean, int, text) is
  'Creates a read-only database login that sees what the given user sees; returns a generated password when none was given.';
