--! Previous: sha1:5a626807f2a084396f04295fed0a80f23410875a
--! Hash: sha1:9dbede7a546a3b8e83999f28fc68dd53169a8c36
--! Message: agent analytics

-- Per day figures behind agent_effectiveness_between, agent_effectiveness_series,
-- agent_head_to_head and agent_ratings (sql/functions/230-235), kept exact in
-- the writing transaction by triggers (sql/rules/170_agent_analytics.sql):
--   * agent_day_stats: per (user, UTC day of the version's created_at, agent);
--   * agent_pair_day_stats: per (user, UTC day of the prompt's created_at, pair
--     of agents, agent < opponent): matches between scored versions of one prompt;
--   * agent_day_totals, agent_pair_day_totals: the same summed over users, so an
--     admin's answer reads as many rows as a user's, however many users there are.
-- Every table is striped over slots like agent_stats: a transaction adds to a
-- slot no other running transaction holds, and readers sum the slots.
-- No foreign keys: each would cost a check per counter row a transaction first
-- touches; a user's rows go with the user (app_private.tg__analytics_user_deletes).
create table if not exists app_hidden.agent_day_stats (
  user_id bigint not null,
  day date not null,
  agent text not null,
  slot smallint not null,
  versions bigint not null default 0,
  wins bigint not null default 0,
  scored bigint not null default 0,
  score_sum numeric not null default 0,
  clarity_sum numeric not null default 0,
  specificity_sum numeric not null default 0,
  actionability_sum numeric not null default 0,
  structure_sum numeric not null default 0,
  context_use_sum numeric not null default 0,
  primary key (user_id, day, agent, slot)
);
create table if not exists app_hidden.agent_day_totals (
  day date not null,
  agent text not null,
  slot smallint not null,
  versions bigint not null default 0,
  wins bigint not null default 0,
  scored bigint not null default 0,
  score_sum numeric not null default 0,
  clarity_sum numeric not null default 0,
  specificity_sum numeric not null default 0,
  actionability_sum numeric not null default 0,
  structure_sum numeric not null default 0,
  context_use_sum numeric not null default 0,
  primary key (day, agent, slot)
);

create table if not exists app_hidden.agent_pair_day_stats (
  user_id bigint not null,
  day date not null,
  agent text not null,
  opponent text not null,
  slot smallint not null,
  wins bigint not null default 0,
  losses bigint not null default 0,
  ties bigint not null default 0,
  primary key (user_id, day, agent, opponent, slot),
  constraint agent_pair_day_stats_order check (agent < opponent)
);
create table if not exists app_hidden.agent_pair_day_totals (
  day date not null,
  agent text not null,
  opponent text not null,
  slot smallint not null,
  wins bigint not null default 0,
  losses bigint not null default 0,
  ties bigint not null default 0,
  primary key (day, agent, opponent, slot),
  constraint agent_pair_day_totals_order check (agent < opponent)
);

-- Every write updates a few of these rows again and again: room on each page
-- keeps the new row versions on it (HOT), with no index entries to add.
alter table app_hidden.agent_day_stats set (fillfactor = 50);
alter table app_hidden.agent_day_totals set (fillfactor = 50);
alter table app_hidden.agent_pair_day_stats set (fillfactor = 50);
alter table app_hidden.agent_pair_day_totals set (fillfactor = 50);
alter table app_hidden.agent_day_stats enable row level security;
alter table app_hidden.agent_day_totals enable row level security;
alter table app_hidden.agent_pair_day_stats enable row level security;
alter table app_hidden.agent_pair_day_totals enable row level security;
-- RLS gives the all-users rows to admins only (sql/rules/170_agent_analytics.sql).
grant select on app_hidden.agent_day_stats, app_hidden.agent_pair_day_stats,
  app_hidden.agent_day_totals, app_hidden.agent_pair_day_totals to app_user, app_reader;

-- What the triggers hand to the functions that add to the tables.
drop type if exists app_private.agent_day_change, app_private.agent_pair_change, app_private.judged_version cascade;
create type app_private.agent_day_change as (
  user_id bigint, day date, agent text, versions bigint, wins bigint, scored bigint, score_sum numeric,
  clarity_sum numeric, specificity_sum numeric, actionability_sum numeric, structure_sum numeric, context_use_sum numeric
);
create type app_private.agent_pair_change as (
  user_id bigint, day date, agent text, opponent text, wins bigint, losses bigint, ties bigint
);
create type app_private.judged_version as (
  prompt_version_id bigint, agent text, total numeric,
  clarity numeric, specificity numeric, actionability numeric, structure numeric, context_use numeric
);

-- The figures of the rows already there (an upgraded database), into slot 0;
-- once: when this migration runs again, the triggers keep the tables already.
-- The same definitions as the triggers: a version's figures in the UTC day of
-- its created_at; a match (two scored versions of one prompt by different
-- agents, compared by total) in the UTC day of its prompt's created_at.
insert into app_hidden.agent_day_stats (user_id, day, agent, slot, versions, wins, scored, score_sum,
                                        clarity_sum, specificity_sum, actionability_sum, structure_sum, context_use_sum)
select v.user_id, (v.created_at at time zone 'UTC')::date, v.source, 0, count(*), count(b.prompt_id), count(j.id),
       coalesce(sum(j.total), 0), coalesce(sum(j.clarity), 0), coalesce(sum(j.specificity), 0),
       coalesce(sum(j.actionability), 0), coalesce(sum(j.structure), 0), coalesce(sum(j.context_use), 0)
  from app_public.prompt_versions v
  left join app_public.judge_scores j on j.prompt_version_id = v.id
  left join app_public.best_heads b on b.prompt_version_id = v.id
 where not exists (select from app_hidden.agent_day_stats)
 group by 1, 2, 3;

insert into app_hidden.agent_pair_day_stats (user_id, day, agent, opponent, slot, wins, losses, ties)
select p.user_id, (p.created_at at time zone 'UTC')::date, x.source, y.source, 0,
       count(*) filter (where xj.total > yj.total), count(*) filter (where xj.total < yj.total),
       count(*) filter (where xj.total = yj.total)
  from app_public.prompts p
  join app_public.prompt_versions x on x.prompt_id = p.id
  join app_public.judge_scores xj on xj.prompt_version_id = x.id
  join app_public.prompt_versions y on y.prompt_id = p.id and y.source > x.source
  join app_public.judge_scores yj on yj.prompt_version_id = y.id
 where not exists (select from app_hidden.agent_pair_day_stats)
 group by 1, 2, 3, 4;

insert into app_hidden.agent_day_totals (day, agent, slot, versions, wins, scored, score_sum,
                                         clarity_sum, specificity_sum, actionability_sum, structure_sum, context_use_sum)
select day, agent, 0, sum(versions), sum(wins), sum(scored), sum(score_sum),
       sum(clarity_sum), sum(specificity_sum), sum(actionability_sum), sum(structure_sum), sum(context_use_sum)
  from app_hidden.agent_day_stats where not exists (select from app_hidden.agent_day_totals) group by 1, 2;

insert into app_hidden.agent_pair_day_totals (day, agent, opponent, slot, wins, losses, ties)
select day, agent, opponent, 0, sum(wins), sum(losses), sum(ties)
  from app_hidden.agent_pair_day_stats where not exists (select from app_hidden.agent_pair_day_totals) group by 1, 2, 3;
