--! Previous: sha1:c4eb69b2d620b2cc1b9e002954fe48fc3a1a4330
--! Hash: sha1:6d2fd0d53d2c76c40e198dd8a3a5ebe89c47bdc5
--! Message: feeds

-- Feeds: standing exports whose runs each hold what changed since the run
-- before. A run is bounded by two snapshots (pg_current_snapshot()): it holds
-- the rows visible in its own snapshot whose last writer was not visible in
-- the previous run's. So every row carries the id of the transaction that last
-- wrote it (written_in): the column default stamps inserts at no extra cost, a
-- trigger stamps updates (sql/functions/200_feed_stamps.sql), and deletes leave
-- a tombstone. A transaction that commits after a run's snapshot is invisible
-- to that run and visible to the next, however early it wrote: the cursor is
-- the snapshot, not a timestamp or a sequence.
-- The id is pg_current_xact_id()'s (xid8, 64 bits with the epoch, so it never
-- wraps around), kept as bigint: PostgreSQL has no statistics for xid8 ranges,
-- and with the default guess (a third of the table) the planner would scan
-- tables whole instead of reading the few recent stamps from the index.
-- Existing rows get this migration's transaction: visible to every run.
alter table app_public.prompts add column if not exists written_in bigint not null default pg_current_xact_id()::text::bigint;
alter table app_public.prompt_versions add column if not exists written_in bigint not null default pg_current_xact_id()::text::bigint;
alter table app_public.judge_scores add column if not exists written_in bigint not null default pg_current_xact_id()::text::bigint;
alter table app_public.best_heads add column if not exists written_in bigint not null default pg_current_xact_id()::text::bigint;
-- An incremental run reads the rows written at or after its lower snapshot's xmin.
create index if not exists prompts_written_in_idx on app_public.prompts (written_in);
create index if not exists prompt_versions_written_in_idx on app_public.prompt_versions (written_in);
create index if not exists judge_scores_written_in_idx on app_public.judge_scores (written_in);
create index if not exists best_heads_written_in_idx on app_public.best_heads (written_in);

-- A row per deleted row of the tables above: which row, whose, its prompt (for
-- the per-prompt multi_agent_log) and the deleting transaction.
create table if not exists app_hidden.tombstones (
  kind text not null constraint tombstones_kind_check
    check (kind in ('prompts', 'prompt_versions', 'judge_scores', 'best_heads')),
  row_id bigint not null,
  user_id bigint not null,
  prompt_id bigint,
  written_in bigint not null default pg_current_xact_id()::text::bigint
);
create index if not exists tombstones_written_in_idx on app_hidden.tombstones (written_in);
alter table app_hidden.tombstones enable row level security;
grant select on app_hidden.tombstones to app_user, app_reader;

create table if not exists app_public.feeds (
  id bigint primary key generated always as identity,
  user_id bigint not null references app_public.users on delete cascade,
  kind text not null constraint feeds_kind_check
    check (kind in ('prompts', 'prompt_versions', 'judge_scores', 'multi_agent_log', 'agent_effectiveness')),
  format text not null constraint feeds_format_check check (format in ('csv', 'jsonl', 'parquet')),
  -- gzip (csv, jsonl) and excel (csv), as for exports.
  options jsonb not null default '{}',
  -- null: runs on request only.
  every interval constraint feeds_every_check
    check (every in ('20 minutes', '1 hour', '1 day', '1 week')),
  filters jsonb not null default '{}',
  -- Everyone's rows (an admin's feed only); otherwise the owner's.
  is_global boolean not null default false,
  paused boolean not null default false,
  next_run_at timestamptz,
  created_at timestamptz not null default now()
);
create index if not exists feeds_user_id_idx on app_public.feeds (user_id);
create index if not exists feeds_next_run_at_idx on app_public.feeds (next_run_at) where not paused;
alter table app_public.feeds enable row level security;
grant select on app_public.feeds to app_user, app_reader;
grant insert (kind, format, options, every, filters, is_global), update (paused, every), delete on app_public.feeds to app_user;

create table if not exists app_public.feed_runs (
  feed_id bigint not null references app_public.feeds on delete cascade,
  number int not null constraint feed_runs_number_positive check (number > 0),
  user_id bigint not null,
  status text not null default 'queued' constraint feed_runs_status_check
    check (status in ('queued', 'running', 'succeeded', 'failed')),
  -- The previous run's snapshot (null for run 1: the whole history) and this
  -- run's, as pg_snapshot's text (xmin:xmax:xip), which the API layers can carry.
  since_snapshot text,
  snapshot text,
  requested_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  attempts int not null default 0,
  rows bigint,
  -- [{"name", "rows", "bytes", "sha256"}], as in the manifest.
  files jsonb,
  -- manifest.json's S3 key (its files are beside it), null in EXPORT_DIR; its sha256 (the ETag of its download).
  manifest_key text,
  manifest_sha256 text,
  error_message text,
  primary key (feed_id, number)
);
create index if not exists feed_runs_user_id_idx on app_public.feed_runs (user_id);
alter table app_public.feed_runs enable row level security;
grant select on app_public.feed_runs to app_user, app_reader;
