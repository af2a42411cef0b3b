--! Previous: sha1:4c991a0f199573b2981563da1941590ae688709d
--! Hash: sha1:5a626807f2a084396f04295fed0a80f23410875a
--! Message: SQL logins kept out while migrating, their transaction limit, a secret export channel, and exports refused when their requester lost its rights

-- The SQL logins a running migration has kept out of the database (their
-- CONNECT revoked, app_private.lock_out_sql_logins), so that access is given
-- back afterwards even if that migration crashed: whoever next finds no
-- migration running (the next migrate, or the worker's limits task) restores it.
create table if not exists app_private.sql_login_lockouts (
  login name primary key,
  locked_at timestamptz not null default now()
);
alter table app_private.sql_login_lockouts enable row level security;

-- How long a SQL login's transaction may last, whatever it runs: statements
-- under the statement timeout with pauses under the idle limit can otherwise
-- keep a transaction (and the locks it holds) open for ever.
alter table app_private.sql_logins
  add column if not exists transaction_timeout interval not null default '10 min';
-- Where the server has transaction_timeout (PostgreSQL 17+), logins made before
-- also start each session with it, as add_sql_login now gives new ones.
do $$
declare
  existing name;
begin
  if current_setting('server_version_num')::int >= 170000 then
    for existing in select m.login from app_private.sql_logins m join pg_roles r on r.rolname = m.login loop
      execute format('alter role %I set transaction_timeout = %L', existing, '600000ms');
    end loop;
  end if;
end;
$$;

-- The channel export status changes are notified on. Anyone may LISTEN on any
-- channel, so its name is a secret only the owner and the gateway read
-- (app_hidden.gateway_exports_channel): a SQL login cannot learn export ids.
create table if not exists app_private.notification_channels (
  purpose text primary key,
  channel text not null unique
);
alter table app_private.notification_channels enable row level security;
insert into app_private.notification_channels (purpose, channel)
values ('exports', 'prompter_exports_' || encode(public.gen_random_bytes(16), 'hex'))
on conflict do nothing;

-- Why an export was refused when it started, as a stable code (the requester
-- lost the rights it was asked with: app_private.export_started).
alter table app_public.exports add column if not exists error_code text;
