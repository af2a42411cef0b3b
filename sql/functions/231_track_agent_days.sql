-- The triggers behind the per-day figures (tables in migration 000009, triggers
-- in sql/rules/170_agent_analytics.sql). What counts where:
--   * a version's figures (versions, its score's figures, its win) count in the
--     UTC day of the version's created_at, under the agent of the row counted;
--   * a match is two scored versions of one prompt by different agents, won by
--     the higher total (equal totals tie), and counts in the UTC day of the
--     prompt's created_at, so every match of a prompt lands in one day.
-- A match depends on the other scores of its prompt, and a deleted version's
-- figures on its score and head as they are: whoever changes or reads them for
-- the figures first locks the prompt's row (app_private.lock_prompts), so
-- writers of one prompt take turns (and may deadlock, 40P01, over its rows in
-- opposite orders: the loser stores nothing), while other prompts' writers never wait.
-- A deletion is taken off by the row being deleted before the rows that cascade
-- from it go: users, prompts and versions have BEFORE DELETE row triggers that
-- take off everything under them while it is still there, and the triggers of
-- the rows that cascade after them skip rows whose parent is gone.

-- Takes off the figures of judge scores as they were (removed) and adds them as
-- they are (added), with every match they played: against the prompt's other
-- scored versions as they are now, and against each other once.
create or replace function app_private.lock_prompts(version_ids bigint[]) returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
begin
  perform from app_public.prompts p
   where p.id in (select v.prompt_id from app_public.prompt_versions v where v.id = any (version_ids))
   order by p.id for no key update of p;
end;
$$;

create or replace function app_private.apply_score_changes(removed app_private.judged_version[], added app_private.judged_version[])
returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
begin
  perform app_private.lock_prompts(array(select r.prompt_version_id from unnest(removed) r
                                         union all select a.prompt_version_id from unnest(added) a));
  perform done.days, done.pairs from (
  with c as materialized (
    select j.sign, j.prompt_version_id, j.agent, j.total, j.clarity, j.specificity, j.actionability, j.structure, j.context_use,
           v.user_id, v.prompt_id, app_private.utc_day(v.created_at) as day, app_private.utc_day(p.created_at) as prompt_day
      from (select -1 as sign, r.* from unnest(removed) r union all select 1, a.* from unnest(added) a) j
      -- Scores whose version or prompt is gone were taken off with it.
      join app_public.prompt_versions v on v.id = j.prompt_version_id
      join app_public.prompts p on p.id = v.prompt_id
  ), others as (
    select v.prompt_id, s.prompt_version_id, s.source as agent, s.total
      from app_public.prompt_versions v
      join app_public.judge_scores s on s.prompt_version_id = v.id
     where v.prompt_id in (select c.prompt_id from c)
       and s.prompt_version_id not in (select c.prompt_version_id from c)
  ), matches as (
    select x.sign, x.user_id, x.prompt_day, x.agent, x.total, y.agent as opponent_agent, y.total as opponent_total
      from c x join others y on y.prompt_id = x.prompt_id and y.agent <> x.agent
    union all
    select x.sign, x.user_id, x.prompt_day, x.agent, x.total, y.agent, y.total
      from c x join c y on y.prompt_id = x.prompt_id and y.sign = x.sign and y.prompt_version_id > x.prompt_version_id
                       and y.agent <> x.agent
  ), oriented as (
    -- Stored once per pair, from the side of the agent whose name sorts first.
    select m.sign, m.user_id, m.prompt_day,
           least(m.agent, m.opponent_agent) as agent, greatest(m.agent, m.opponent_agent) as opponent,
           case when m.agent < m.opponent_agent then sign(m.total - m.opponent_total) else sign(m.opponent_total - m.total) end as outcome
      from matches m
  )
  select app_private.add_agent_days(array(
           select row(c.user_id, c.day, c.agent, 0, 0, sum(c.sign), sum(c.sign * c.total), sum(c.sign * c.clarity),
                      sum(c.sign * c.specificity), sum(c.sign * c.actionability), sum(c.sign * c.structure),
                      sum(c.sign * c.context_use))::app_private.agent_day_change
             from c group by c.user_id, c.day, c.agent)) as days,
         app_private.add_agent_pair_days(array(
           select row(o.user_id, o.prompt_day, o.agent, o.opponent, coalesce(sum(o.sign) filter (where o.outcome > 0), 0),
                      coalesce(sum(o.sign) filter (where o.outcome < 0), 0), coalesce(sum(o.sign) filter (where o.outcome = 0), 0)
                      )::app_private.agent_pair_change
             from oriented o group by o.user_id, o.prompt_day, o.agent, o.opponent)) as pairs
  ) done;
end;
$$;

-- A statement's wins: best heads as they were off, as they are on, each in the
-- day of the version it names (as it is now) under the head's own agent.
create or replace function app_private.apply_head_changes(removed bigint[], removed_agents text[], added bigint[], added_agents text[])
returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
begin
  perform app_private.lock_prompts(removed || added);
  perform app_private.add_agent_days(array(
    select row(v.user_id, app_private.utc_day(v.created_at), h.agent, 0, sum(h.sign), 0, 0, 0, 0, 0, 0, 0)::app_private.agent_day_change
      from (select -1 as sign, r.id, r.agent from unnest(removed, removed_agents) r(id, agent)
            union all select 1, a.id, a.agent from unnest(added, added_agents) a(id, agent)) h
      join app_public.prompt_versions v on v.id = h.id
     -- A head whose prompt is gone was taken off with the prompt.
     where exists (select from app_public.prompts p where p.id = v.prompt_id)
     group by v.user_id, app_private.utc_day(v.created_at), h.agent));
end;
$$;

-- A version's new agent or day: the version moves; when its day moves, so do its
-- score and win. Those the cascades to judge_scores and best_heads (which run
-- first) have already moved to the new agent, counting from the version's new
-- day, so here they move from the old day to the new under the old agent.
create or replace function app_private.tg__analytics_version_updates() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  perform app_private.lock_prompts(array(select n.id from new_rows n));
  perform app_private.add_agent_days(array(
    with moved as (
      select o.id, o.user_id, o.source as old_agent, n.source as new_agent,
             app_private.utc_day(o.created_at) as old_day, app_private.utc_day(n.created_at) as new_day
        from old_rows o join new_rows n on n.id = o.id
       where o.source <> n.source or app_private.utc_day(o.created_at) <> app_private.utc_day(n.created_at)
    ), carried as (
      select m.user_id, m.old_day, m.new_day, m.old_agent, s.total, s.clarity, s.specificity, s.actionability, s.structure,
             s.context_use, (s.id is not null)::int as scored, (b.prompt_id is not null)::int as won
        from moved m
        left join app_public.judge_scores s on s.prompt_version_id = m.id
        left join app_public.best_heads b on b.prompt_version_id = m.id
       where m.old_day <> m.new_day
    )
    select row(m.user_id, m.old_day, m.old_agent, -1, 0, 0, 0, 0, 0, 0, 0, 0)::app_private.agent_day_change from moved m
    union all
    select row(m.user_id, m.new_day, m.new_agent, 1, 0, 0, 0, 0, 0, 0, 0, 0)::app_private.agent_day_change from moved m
    union all
    select row(c.user_id, d.day, c.old_agent, 0, d.sign * c.won, d.sign * c.scored, d.sign * coalesce(c.total, 0),
               d.sign * coalesce(c.clarity, 0), d.sign * coalesce(c.specificity, 0), d.sign * coalesce(c.actionability, 0),
               d.sign * coalesce(c.structure, 0), d.sign * coalesce(c.context_use, 0))::app_private.agent_day_change
      from carried c cross join lateral (values (-1, c.old_day), (1, c.new_day)) d(sign, day)));
  return null;
end;
$$;

-- Runs before each version goes, while its score, head and prompt are there.
create or replace function app_private.tg__analytics_version_deletes() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  -- A version going with its prompt was taken off with the prompt.
  perform from app_public.prompts p where p.id = old.prompt_id for no key update;
  if found then
    perform app_private.apply_score_changes(array(
      select row(s.prompt_version_id, s.source, s.total, s.clarity, s.specificity, s.actionability, s.structure, s.context_use)::app_private.judged_version
        from app_public.judge_scores s where s.prompt_version_id = old.id), '{}');
    perform app_private.add_agent_days(array[row(old.user_id, app_private.utc_day(old.created_at), old.source, -1,
      -(select count(*) from app_public.best_heads b where b.prompt_version_id = old.id), 0, 0, 0, 0, 0, 0, 0)::app_private.agent_day_change]);
  end if;
  return old;
end;
$$;

-- Runs before each prompt goes, while its versions, scores and head are there.
create or replace function app_private.tg__analytics_prompt_deletes() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  perform app_private.apply_score_changes(array(
    select row(s.prompt_version_id, s.source, s.total, s.clarity, s.specificity, s.actionability, s.structure, s.context_use)::app_private.judged_version
      from app_public.prompt_versions v join app_public.judge_scores s on s.prompt_version_id = v.id
     where v.prompt_id = old.id), '{}');
  perform app_private.add_agent_days(array(
    select row(v.user_id, app_private.utc_day(v.created_at), v.source, -count(*), -count(b.prompt_id), 0, 0, 0, 0, 0, 0, 0)::app_private.agent_day_change
      from app_public.prompt_versions v left join app_public.best_heads b on b.prompt_version_id = v.id
     where v.prompt_id = old.id
     group by v.user_id, app_private.utc_day(v.created_at), v.source));
  return old;
end;
$$;

-- A prompt's new day: its matches move with it.
create or replace function app_private.tg__analytics_prompt_updates() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  perform app_private.add_agent_pair_days(array(
    with moved as (
      select n.id, n.user_id, app_private.utc_day(o.created_at) as old_day, app_private.utc_day(n.created_at) as new_day
        from old_rows o join new_rows n on n.id = o.id
       where app_private.utc_day(o.created_at) <> app_private.utc_day(n.created_at)
    ), matches as (
      select m.user_id, m.old_day, m.new_day, least(xs.source, ys.source) as agent, greatest(xs.source, ys.source) as opponent,
             case when xs.source < ys.source then sign(xs.total - ys.total) else sign(ys.total - xs.total) end as outcome
        from moved m
        join app_public.prompt_versions x on x.prompt_id = m.id
        join app_public.judge_scores xs on xs.prompt_version_id = x.id
        join app_public.prompt_versions y on y.prompt_id = m.id and y.id > x.id
        join app_public.judge_scores ys on ys.prompt_version_id = y.id and ys.source <> xs.source
    )
    select row(m.user_id, d.day, m.agent, m.opponent, d.sign * count(*) filter (where m.outcome > 0),
               d.sign * count(*) filter (where m.outcome < 0), d.sign * count(*) filter (where m.outcome = 0))::app_private.agent_pair_change
      from matches m cross join lateral (values (-1, m.old_day), (1, m.new_day)) d(sign, day)
     group by m.user_id, d.day, d.sign, m.agent, m.opponent));
  return null;
end;
$$;

create or replace function app_private.tg__analytics_score_changes() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
declare
  added app_private.judged_version[] := '{}';
begin
  if tg_op = 'UPDATE' then
    added := array(select row(n.prompt_version_id, n.source, n.total, n.clarity, n.specificity, n.actionability, n.structure, n.context_use)::app_private.judged_version
                     from new_rows n);
  end if;
  perform app_private.apply_score_changes(array(
    select row(o.prompt_version_id, o.source, o.total, o.clarity, o.specificity, o.actionability, o.structure, o.context_use)::app_private.judged_version
      from old_rows o), added);
  return null;
end;
$$;

create or replace function app_private.tg__analytics_head_changes() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
declare
  added bigint[] := '{}';
  added_agents text[] := '{}';
begin
  if tg_op = 'UPDATE' then
    added := array(select n.prompt_version_id from new_rows n order by n.prompt_id);
    added_agents := array(select n.source from new_rows n order by n.prompt_id);
  end if;
  perform app_private.apply_head_changes(array(select o.prompt_version_id from old_rows o order by o.prompt_id),
                                         array(select o.source from old_rows o order by o.prompt_id), added, added_agents);
  return null;
end;
$$;

-- Runs before a user goes: their figures come off the all-users rows, and their
-- own rows go (the rows that cascade from the user find them gone and skip).
create or replace function app_private.tg__analytics_user_deletes() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  insert into app_hidden.agent_day_totals as t (day, agent, slot, versions, wins, scored, score_sum,
                                               clarity_sum, specificity_sum, actionability_sum, structure_sum, context_use_sum)
  select s.day, s.agent, app_private.transaction_global_slot(), -sum(s.versions), -sum(s.wins), -sum(s.scored), -sum(s.score_sum),
         -sum(s.clarity_sum), -sum(s.specificity_sum), -sum(s.actionability_sum), -sum(s.structure_sum), -sum(s.context_use_sum)
    from app_hidden.agent_day_stats s where s.user_id = old.id group by 1, 2 order by 1, 2
  on conflict (day, agent, slot) do update
    set versions = t.versions + excluded.versions, wins = t.wins + excluded.wins, scored = t.scored + excluded.scored,
        score_sum = t.score_sum + excluded.score_sum, clarity_sum = t.clarity_sum + excluded.clarity_sum,
        specificity_sum = t.specificity_sum + excluded.specificity_sum,
        actionability_sum = t.actionability_sum + excluded.actionability_sum,
        structure_sum = t.structure_sum + excluded.structure_sum, context_use_sum = t.context_use_sum + excluded.context_use_sum;
  insert into app_hidden.agent_pair_day_totals as t (day, agent, opponent, slot, wins, losses, ties)
  select s.day, s.agent, s.opponent, app_private.transaction_global_slot(), -sum(s.wins), -sum(s.losses), -sum(s.ties)
    from app_hidden.agent_pair_day_stats s where s.user_id = old.id group by 1, 2, 3 order by 1, 2, 3
  on conflict (day, agent, opponent, slot) do update
    set wins = t.wins + excluded.wins, losses = t.losses + excluded.losses, ties = t.ties + excluded.ties;
  delete from app_hidden.agent_day_stats s where s.user_id = old.id;
  delete from app_hidden.agent_pair_day_stats s where s.user_id = old.id;
  return old;
end;
$$;
