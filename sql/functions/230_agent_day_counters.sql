-- The UTC day a timestamp counts in, for every per-day figure.
create or replace function app_private.utc_day(at timestamptz) returns date
language sql immutable parallel safe
as $$
  select pg_catalog.timezone('UTC', at)::pg_catalog.date
$$;

-- The slot of the all-users rows (agent_day_totals, agent_pair_day_totals) this
-- transaction adds to: every writer, of any user, adds to them, so they are
-- striped like a user's counters (see app_private.counter_slot) under a lock
-- key of their own: the first free of 32 slots, starting from one of the
-- backend's own; when all are taken it shares its backend's slot and waits, at
-- worst, for the row locks of the writers holding it. The
-- prompter.global_counter_slot setting remembers it for the transaction; a
-- rolled-back savepoint forgets it with its lock.
create or replace function app_private.global_counter_slot() returns smallint
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  slot int;
  remembered text;
begin
  for step in 0 .. 31 loop
    slot := (pg_backend_pid() + step) % 32;
    -- 1347569484 is 'PRGL': global counter slot locks, apart from every other advisory lock.
    exit when pg_try_advisory_xact_lock(1347569484, slot);
    slot := null;
  end loop;
  slot := coalesce(slot, pg_backend_pid() % 32);
  remembered := set_config('prompter.global_counter_slot', slot::text, true);
  return slot;
end;
$$;

-- Plain SQL, so the planner inlines it into the statements that add figures.
create or replace function app_private.transaction_global_slot() returns smallint
language sql volatile
as $$
  select coalesce(nullif(pg_catalog.current_setting('prompter.global_counter_slot', true), '')::smallint,
                  app_private.global_counter_slot())
$$;

-- Adds per (user, day, agent) changes to the user's slot and to the all-users
-- rows. Changes of users that no longer exist are dropped: a user being
-- deleted took their figures off the totals already (tg__analytics_user_deletes).
create or replace function app_private.add_agent_days(changes app_private.agent_day_change[]) returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
begin
  with c as materialized (
    select c.user_id, c.day, c.agent, sum(c.versions) as versions, sum(c.wins) as wins, sum(c.scored) as scored,
           sum(c.score_sum) as score_sum, sum(c.clarity_sum) as clarity_sum, sum(c.specificity_sum) as specificity_sum,
           sum(c.actionability_sum) as actionability_sum, sum(c.structure_sum) as structure_sum,
           sum(c.context_use_sum) as context_use_sum
      from unnest(changes) c
     where exists (select from app_public.users u where u.id = c.user_id)
     group by 1, 2, 3
    having row(sum(c.versions), sum(c.wins), sum(c.scored), sum(c.score_sum), sum(c.clarity_sum), sum(c.specificity_sum),
               sum(c.actionability_sum), sum(c.structure_sum), sum(c.context_use_sum)) <> row(0, 0, 0, 0, 0, 0, 0, 0, 0)
  ), mine as (
    insert into app_hidden.agent_day_stats as s (user_id, day, agent, slot, versions, wins, scored, score_sum,
                                                clarity_sum, specificity_sum, actionability_sum, structure_sum, context_use_sum)
    select c.user_id, c.day, c.agent, app_private.transaction_counter_slot(c.user_id), c.versions, c.wins, c.scored,
           c.score_sum, c.clarity_sum, c.specificity_sum, c.actionability_sum, c.structure_sum, c.context_use_sum
      from c order by 1, 2, 3
    on conflict (user_id, day, agent, slot) do update
      set versions = s.versions + excluded.versions, wins = s.wins + excluded.wins, scored = s.scored + excluded.scored,
          score_sum = s.score_sum + excluded.score_sum, clarity_sum = s.clarity_sum + excluded.clarity_sum,
          specificity_sum = s.specificity_sum + excluded.specificity_sum,
          actionability_sum = s.actionability_sum + excluded.actionability_sum,
          structure_sum = s.structure_sum + excluded.structure_sum, context_use_sum = s.context_use_sum + excluded.context_use_sum
  )
  insert into app_hidden.agent_day_totals as t (day, agent, slot, versions, wins, scored, score_sum,
                                               clarity_sum, specificity_sum, actionability_sum, structure_sum, context_use_sum)
  select c.day, c.agent, app_private.transaction_global_slot(), sum(c.versions), sum(c.wins), sum(c.scored), sum(c.score_sum),
         sum(c.clarity_sum), sum(c.specificity_sum), sum(c.actionability_sum), sum(c.structure_sum), sum(c.context_use_sum)
    from c group by 1, 2 order by 1, 2
  on conflict (day, agent, slot) do update
    set versions = t.versions + excluded.versions, wins = t.wins + excluded.wins, scored = t.scored + excluded.scored,
        score_sum = t.score_sum + excluded.score_sum, clarity_sum = t.clarity_sum + excluded.clarity_sum,
        specificity_sum = t.specificity_sum + excluded.specificity_sum,
        actionability_sum = t.actionability_sum + excluded.actionability_sum,
        structure_sum = t.structure_sum + excluded.structure_sum, context_use_sum = t.context_use_sum + excluded.context_use_sum;
end;
$$;

-- The same for head-to-head changes, per (user, day, agent, opponent).
create or replace function app_private.add_agent_pair_days(changes app_private.agent_pair_change[]) returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
begin
  with c as materialized (
    select c.user_id, c.day, c.agent, c.opponent, sum(c.wins) as wins, sum(c.losses) as losses, sum(c.ties) as ties
      from unnest(changes) c
     where exists (select from app_public.users u where u.id = c.user_id)
     group by 1, 2, 3, 4
    having row(sum(c.wins), sum(c.losses), sum(c.ties)) <> row(0, 0, 0)
  ), mine as (
    insert into app_hidden.agent_pair_day_stats as s (user_id, day, agent, opponent, slot, wins, losses, ties)
    select c.user_id, c.day, c.agent, c.opponent, app_private.transaction_counter_slot(c.user_id), c.wins, c.losses, c.ties
      from c order by 1, 2, 3, 4
    on conflict (user_id, day, agent, opponent, slot) do update
      set wins = s.wins + excluded.wins, losses = s.losses + excluded.losses, ties = s.ties + excluded.ties
  )
  insert into app_hidden.agent_pair_day_totals as t (day, agent, opponent, slot, wins, losses, ties)
  select c.day, c.agent, c.opponent, app_private.transaction_global_slot(), sum(c.wins), sum(c.losses), sum(c.ties)
    from c group by 1, 2, 3 order by 1, 2, 3
  on conflict (day, agent, opponent, slot) do update
    set wins = t.wins + excluded.wins, losses = t.losses + excluded.losses, ties = t.ties + excluded.ties;
end;
$$;
