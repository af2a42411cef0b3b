--! Previous: sha1:cf7ebc5804bff3d8124da53d442b5d698e8f3df0
--! Hash: sha1:cc596f674a38ca197c1a598ccf4b5cac96664daa
--! Message: locks nobody else can take, and the limits of each SQL login

-- Locks the service's own processes serialise on (migrations, releasing dead
-- workers' jobs, enforcing SQL logins' limits). A row lock here, unlike an advisory
-- lock, can only be taken by a role that may write the table: the owner.
create table if not exists app_private.process_locks (
  name text primary key
);
alter table app_private.process_locks enable row level security;
insert into app_private.process_locks (name)
values ('migrate'), ('release_dead_workers'), ('sql_login_limits')
on conflict do nothing;

-- One row per user whose export requests are serialised by the rate limit
-- (app_hidden.lock_export_rate), for the same reason.
create table if not exists app_private.export_rate_locks (
  user_id bigint primary key references app_public.users on delete cascade
);
alter table app_private.export_rate_locks enable row level security;

-- What each SQL login may use, as configured: the worker enforces these
-- whatever the login later sets for itself with ALTER ROLE or SET.
alter table app_private.sql_logins
  add column if not exists statement_timeout interval not null default '1 min',
  add column if not exists idle_in_transaction_timeout interval not null default '10 min';
-- Logins made before: their limits as add_sql_login set them on the role.
update app_private.sql_logins m
   set statement_timeout = coalesce((
         select substr(setting, length('statement_timeout=') + 1)::interval
           from pg_roles r, unnest(r.rolconfig) setting
          where r.rolname = m.login and setting ~ '^statement_timeout=\d+(ms|s|min|h)$'
            and substr(setting, length('statement_timeout=') + 1) !~ '^0'), m.statement_timeout);
