--! Previous: -
--! Hash: sha1:61089fadf4b8092483a13d3207f54c45d6e80831
--! Message: foundation

-- Foundation: roles, schemas, tables, constraints, grants.
-- Stateless objects (functions, policies, triggers, views) live in sql/ and are
-- re-applied after every migration; see src/db/apply-sql.ts.

-- Roles are cluster-wide, so several databases (tests, CI) share them.
do $$
begin
  if not exists (select from pg_roles where rolname = 'app_anonymous') then
    create role app_anonymous nologin;
  end if;
  if not exists (select from pg_roles where rolname = 'app_user') then
    create role app_user nologin;
  end if;
  if not exists (select from pg_roles where rolname = 'app_admin') then
    create role app_admin nologin;
  end if;
  -- Read-only roles for database logins of analysts (see `prompter sql-user`).
  if not exists (select from pg_roles where rolname = 'app_reader') then
    create role app_reader nologin;
  end if;
  if not exists (select from pg_roles where rolname = 'app_auditor') then
    create role app_auditor nologin;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;
-- An admin is a user who may also read everyone's data.
grant app_user to app_admin;
grant app_reader to app_auditor;
grant app_anonymous, app_user, app_admin to authenticator;

drop schema if exists app_public cascade;
drop schema if exists app_hidden cascade;
drop schema if exists app_private cascade;

create extension if not exists pgcrypto with schema public;

create schema app_public;
create schema app_hidden;
create schema app_private;

-- Nobody gets anything by default: every privilege below is granted explicitly.
revoke all on schema public from public;
grant usage on schema public to app_anonymous, app_user, app_reader;
alter default privileges revoke execute on functions from public;
alter default privileges in schema app_public revoke execute on functions from public;
alter default privileges in schema app_hidden revoke execute on functions from public;
alter default privileges in schema app_private revoke execute on functions from public;

grant usage on schema app_public to app_anonymous, app_user, app_reader;
grant usage on schema app_hidden to app_user, app_reader;

--------------------------------------------------------------------------------
-- Users

create table app_public.users (
  id bigint primary key generated always as identity,
  username text not null
    constraint users_username_format check (username ~ '^[A-Za-z][A-Za-z0-9_.-]{1,62}$'),
  is_admin boolean not null default false,
  created_at timestamptz not null default now()
);
create unique index users_username_key on app_public.users (lower(username));
comment on table app_public.users is 'A person using prompter. Passwords live in app_private.user_secrets.';
alter table app_public.users enable row level security;
grant select on app_public.users to app_user, app_reader;
grant update (username) on app_public.users to app_user;

create table app_private.user_secrets (
  user_id bigint primary key references app_public.users on delete cascade,
  password_hash text not null
);
alter table app_private.user_secrets enable row level security;

--------------------------------------------------------------------------------
-- Agents

create table app_public.agents (
  -- The name becomes a CSV column (<name>_score) and a metric label, so keep it an identifier.
  name text primary key constraint agents_name_format check (name ~ '^[a-z][a-z0-9_]{0,39}$'),
  description text not null default '' check (length(description) <= 2000),
  created_at timestamptz not null default now()
);
comment on table app_public.agents is 'Agents that write prompt versions. Registered by admins.';
alter table app_public.agents enable row level security;
grant select on app_public.agents to app_user, app_reader;
grant insert (name, description), update (description), delete on app_public.agents to app_admin;

insert into app_public.agents (name, description) values
  ('syntax', 'Fixes grammar, spelling and phrasing.'),
  ('structure', 'Reorganises the prompt into clear sections and steps.'),
  ('domain', 'Adds domain knowledge and context.');

--------------------------------------------------------------------------------
-- Prompts, versions, scores, best heads.
-- Every row carries user_id, and every foreign key between a user's rows
-- includes it, so no row can reference another user's row.

create table app_public.prompts (
  id bigint primary key generated always as identity,
  user_id bigint not null references app_public.users on delete cascade,
  text text not null constraint prompts_text_not_blank check (text ~ '\S'),
  created_at timestamptz not null default now(),
  unique (user_id, id)
);
create index prompts_created_at_idx on app_public.prompts (created_at);
alter table app_public.prompts enable row level security;
grant select on app_public.prompts to app_user, app_reader;
grant insert (text), update (text), delete on app_public.prompts to app_user;

create table app_public.prompt_versions (
  id bigint primary key generated always as identity,
  prompt_id bigint not null,
  user_id bigint not null,
  text text not null constraint prompt_versions_text_not_blank check (text ~ '\S'),
  explanation text constraint prompt_versions_explanation_not_blank check (explanation ~ '\S'),
  source text not null constraint prompt_versions_source_fkey references app_public.agents (name),
  created_at timestamptz not null default now(),
  constraint prompt_versions_prompt_fkey foreign key (user_id, prompt_id)
    references app_public.prompts (user_id, id) on delete cascade,
  -- Targets of the composite keys from judge_scores and best_heads, which copy
  -- the source so the per-agent statistics follow every change.
  unique (user_id, id, source),
  unique (user_id, prompt_id, id, source)
);
create index prompt_versions_created_at_idx on app_public.prompt_versions (created_at);
create index prompt_versions_prompt_id_idx on app_public.prompt_versions (prompt_id, source, created_at);
alter table app_public.prompt_versions enable row level security;
grant select on app_public.prompt_versions to app_user, app_reader;
grant insert (prompt_id, text, explanation, source), update (text, explanation, source), delete
  on app_public.prompt_versions to app_user;

create table app_public.judge_scores (
  id bigint primary key generated always as identity,
  prompt_version_id bigint not null constraint judge_scores_prompt_version_id_key unique,
  user_id bigint not null,
  -- Filled from the version by a trigger; kept equal to it by the foreign key below.
  source text not null,
  clarity numeric not null constraint judge_scores_clarity_range check (clarity between 0 and 10),
  specificity numeric not null constraint judge_scores_specificity_range check (specificity between 0 and 10),
  actionability numeric not null constraint judge_scores_actionability_range check (actionability between 0 and 10),
  structure numeric not null constraint judge_scores_structure_range check (structure between 0 and 10),
  context_use numeric not null constraint judge_scores_context_use_range check (context_use between 0 and 10),
  total numeric generated always as (clarity + specificity + actionability + structure + context_use) stored,
  created_at timestamptz not null default now(),
  constraint judge_scores_version_fkey foreign key (user_id, prompt_version_id, source)
    references app_public.prompt_versions (user_id, id, source) on delete cascade on update cascade
);
create index judge_scores_user_id_idx on app_public.judge_scores (user_id);
alter table app_public.judge_scores enable row level security;
grant select on app_public.judge_scores to app_user, app_reader;
grant insert (prompt_version_id, clarity, specificity, actionability, structure, context_use),
  update (clarity, specificity, actionability, structure, context_use), delete
  on app_public.judge_scores to app_user;

create table app_public.best_heads (
  prompt_id bigint primary key,
  prompt_version_id bigint not null,
  user_id bigint not null,
  -- Filled from the version by a trigger; kept equal to it by the foreign key below.
  source text not null,
  constraint best_heads_prompt_fkey foreign key (user_id, prompt_id)
    references app_public.prompts (user_id, id) on delete cascade,
  -- The winning version must belong to this very prompt.
  constraint best_heads_version_fkey foreign key (user_id, prompt_id, prompt_version_id, source)
    references app_public.prompt_versions (user_id, prompt_id, id, source) on delete cascade on update cascade
);
create index best_heads_version_idx on app_public.best_heads (prompt_version_id);
create index best_heads_user_id_idx on app_public.best_heads (user_id);
alter table app_public.best_heads enable row level security;
grant select on app_public.best_heads to app_user, app_reader;
grant insert (prompt_id, prompt_version_id), update (prompt_version_id), delete
  on app_public.best_heads to app_user;

--------------------------------------------------------------------------------
-- Per (user, agent) statistics, maintained by triggers in the same transaction
-- as every write, so agent_effectiveness reads a few rows and is never stale.

create table app_hidden.agent_stats (
  user_id bigint not null references app_public.users on delete cascade,
  agent text not null references app_public.agents (name),
  total bigint not null default 0,
  wins bigint not null default 0,
  scored bigint not null default 0,
  score_sum numeric not null default 0,
  primary key (user_id, agent)
);
create index agent_stats_agent_idx on app_hidden.agent_stats (agent);
alter table app_hidden.agent_stats enable row level security;
grant select on app_hidden.agent_stats to app_user, app_reader;

-- A counter per user that moves with every change to their data, so an export
-- can tell whether the data it saw is still current.
create table app_hidden.data_versions (
  user_id bigint primary key references app_public.users on delete cascade,
  version bigint not null default 0
);
alter table app_hidden.data_versions enable row level security;
grant select on app_hidden.data_versions to app_user, app_reader;

--------------------------------------------------------------------------------
-- Exports: a row per requested CSV export; the worker fills in the outcome.

create table app_public.export_kinds (
  name text primary key,
  description text not null
);
alter table app_public.export_kinds enable row level security;
grant select on app_public.export_kinds to app_user, app_reader;
insert into app_public.export_kinds (name, description) values
  ('multi_agent_log', 'One row per prompt: the original, the winning version and each agent''s score.'),
  ('prompt_versions', 'Every prompt version.'),
  ('judge_scores', 'Every judge score.'),
  ('agent_effectiveness', 'Wins, total, win rate and average score per agent.'),
  ('all', 'Every kind above, from one snapshot, in one zip file.');

create table app_public.exports (
  id bigint primary key generated always as identity,
  user_id bigint not null references app_public.users on delete cascade,
  kind text not null constraint exports_kind_fkey references app_public.export_kinds (name),
  options jsonb not null default '{}',
  status text not null default 'queued' constraint exports_status_check
    check (status in ('queued', 'running', 'succeeded', 'failed')),
  -- The role the request was made as; the worker exports as this role, so RLS
  -- gives the export exactly what the requester could read.
  requested_role name not null,
  is_global boolean not null default false,
  requested_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  rows bigint,
  bytes bigint,
  sha256 text,
  file_name text,
  attempts int not null default 0,
  error_message text,
  progress_rows bigint not null default 0,
  data_version bigint
);
create index exports_user_requested_idx on app_public.exports (user_id, requested_at desc);
create index exports_requested_at_idx on app_public.exports (requested_at);
alter table app_public.exports enable row level security;
grant select on app_public.exports to app_user, app_reader;
grant insert (kind, options) on app_public.exports to app_user, app_reader;

-- Database logins of analysts, each mapped to an app user (see `prompter sql-user`).
create table app_private.sql_logins (
  login name primary key,
  user_id bigint not null references app_public.users on delete cascade,
  is_admin boolean not null default false,
  created_at timestamptz not null default now()
);
alter table app_private.sql_logins enable row level security;

create type app_public.jwt_token as (
  role text,
  user_id bigint,
  exp bigint
);
