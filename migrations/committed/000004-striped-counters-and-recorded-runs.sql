--! Previous: sha1:6b608e38d9d057f40a96445b5f6ab325529c97da
--! Hash: sha1:29a17378520fe908d04b7e812872c9b799387ae6
--! Message: striped counters and recorded runs

-- The bookkeeping behind agent_effectiveness and the exports' `stale` flag was
-- one row per user (data_versions) and per (user, agent) (agent_stats) that
-- every write of the user updated, so one user's concurrent writers queued on
-- those rows. Each now has up to 32 slots; a transaction adds to a slot no other
-- running transaction holds (app_private.counter_slot), and readers sum the slots.
-- The existing rows become slot 0, so every figure stays what it was.
alter table app_hidden.agent_stats add column if not exists slot smallint not null default 0;
alter table app_hidden.agent_stats drop constraint if exists agent_stats_pkey;
alter table app_hidden.agent_stats add constraint agent_stats_pkey primary key (user_id, agent, slot);

alter table app_hidden.data_versions add column if not exists slot smallint not null default 0;
alter table app_hidden.data_versions drop constraint if exists data_versions_pkey;
alter table app_hidden.data_versions add constraint data_versions_pkey primary key (user_id, slot);

-- recordRun's idempotency keys: the first result of a run, returned again when a
-- client retries with the same key, and a digest of the run it came from, so a
-- key reused for a different run is refused rather than silently answered.
create table if not exists app_hidden.recorded_runs (
  user_id bigint not null references app_public.users on delete cascade,
  idempotency_key text not null constraint recorded_runs_key_length check (length(idempotency_key) between 1 and 200),
  run_digest text not null,
  result jsonb not null,
  created_at timestamptz not null default now(),
  primary key (user_id, idempotency_key)
);
alter table app_hidden.recorded_runs enable row level security;
grant select, insert, update (result) on app_hidden.recorded_runs to app_user;
