-- recordRun's fast path for a new prompt: its versions, scores, matches and
-- best head are known from the run itself, and no other transaction can see
-- the prompt yet (so nothing to lock and no other score to compare with), so
-- the per-day figures, agent_stats' counts and the prompt's multi_agent_log row
-- are added in one statement here instead of by six insert triggers (three of
-- sql/rules/170_agent_analytics.sql, three of sql/rules/020_triggers.sql),
-- which record_run skips while prompter.new_run is 'on' (their WHEN clause
-- honours it only as the owner, so no caller can make their own writes skip
-- them), and a refresh of the prompt (which re-reads what the run holds). The
-- prompt's own insert trigger still takes the user's counter slot and moves
-- their data version. It turns the setting off again, and returns what
-- set_config returns.
drop function if exists app_private.add_new_run_figures(bigint, jsonb, int);
create or replace function app_private.add_new_run_figures(me bigint, run jsonb, best int, new_prompt_id bigint) returns text
language plpgsql volatile
set search_path = pg_catalog
-- One plan for every run (see app_public.record_run).
set plan_cache_mode = force_generic_plan
as $$
declare
  today constant date := app_private.utc_day(now());
begin
  with v as materialized (
    select e.n, e.v->>'agent' as agent, jsonb_typeof(e.v->'scores') = 'object' as scored,
           (e.v->'scores'->>'clarity')::numeric as clarity, (e.v->'scores'->>'specificity')::numeric as specificity,
           (e.v->'scores'->>'actionability')::numeric as actionability, (e.v->'scores'->>'structure')::numeric as structure,
           (e.v->'scores'->>'context_use')::numeric as context_use, e.n - 1 = best as won
      from jsonb_array_elements(run->'versions') with ordinality e(v, n)
  ), log_row as (
    -- As app_private.refresh_multi_agent_log_rows computes it: the best head's
    -- text and agent, and each agent's newest version's total (the versions
    -- share created_at, so the newest is the last of the run), JSON null when unscored.
    insert into app_hidden.multi_agent_log_rows (prompt_id, user_id, final_prompt, selected_agent, scores)
    select new_prompt_id, me, run->'versions'->best->>'text', run->'versions'->best->>'agent',
           (select jsonb_object_agg(newest.agent, newest.clarity + newest.specificity + newest.actionability
                                                  + newest.structure + newest.context_use)
              from (select distinct on (v.agent) v.* from v order by v.agent, v.n desc) newest)
  ), days as materialized (
    select v.agent, count(*) as versions, count(*) filter (where v.won) as wins, count(*) filter (where v.scored) as scored,
           coalesce(sum(v.clarity + v.specificity + v.actionability + v.structure + v.context_use), 0) as score_sum,
           coalesce(sum(v.clarity), 0) as clarity_sum, coalesce(sum(v.specificity), 0) as specificity_sum,
           coalesce(sum(v.actionability), 0) as actionability_sum, coalesce(sum(v.structure), 0) as structure_sum,
           coalesce(sum(v.context_use), 0) as context_use_sum
      from v group by v.agent
  ), pairs as materialized (
    select least(x.agent, y.agent) as agent, greatest(x.agent, y.agent) as opponent,
           count(*) filter (where o.outcome > 0) as wins, count(*) filter (where o.outcome < 0) as losses,
           count(*) filter (where o.outcome = 0) as ties
      from v x join v y on y.n > x.n and y.agent <> x.agent and x.scored and y.scored
     cross join lateral (select case when x.agent < y.agent then 1 else -1 end
                                * sign((x.clarity + x.specificity + x.actionability + x.structure + x.context_use)
                                       - (y.clarity + y.specificity + y.actionability + y.structure + y.context_use)) as outcome) o
     group by 1, 2
  ), all_time as (
    insert into app_hidden.agent_stats as s (user_id, agent, slot, total, scored, wins, score_sum)
    select me, d.agent, app_private.transaction_counter_slot(me), d.versions, d.scored, d.wins, d.score_sum
      from days d order by d.agent
    on conflict (user_id, agent, slot) do update
      set total = s.total + excluded.total, scored = s.scored + excluded.scored, wins = s.wins + excluded.wins,
          score_sum = s.score_sum + excluded.score_sum
  ), mine as (
    insert into app_hidden.agent_day_stats as s (user_id, day, agent, slot, versions, wins, scored, score_sum,
                                                clarity_sum, specificity_sum, actionability_sum, structure_sum, context_use_sum)
    select me, today, d.agent, app_private.transaction_counter_slot(me), d.versions, d.wins, d.scored, d.score_sum,
           d.clarity_sum, d.specificity_sum, d.actionability_sum, d.structure_sum, d.context_use_sum
      from days d order by d.agent
    on conflict (user_id, day, agent, slot) do update
      set versions = s.versions + excluded.versions, wins = s.wins + excluded.wins, scored = s.scored + excluded.scored,
          score_sum = s.score_sum + excluded.score_sum, clarity_sum = s.clarity_sum + excluded.clarity_sum,
          specificity_sum = s.specificity_sum + excluded.specificity_sum,
          actionability_sum = s.actionability_sum + excluded.actionability_sum,
          structure_sum = s.structure_sum + excluded.structure_sum, context_use_sum = s.context_use_sum + excluded.context_use_sum
  ), everyone as (
    insert into app_hidden.agent_day_totals as t (day, agent, slot, versions, wins, scored, score_sum,
                                                 clarity_sum, specificity_sum, actionability_sum, structure_sum, context_use_sum)
    select today, d.agent, app_private.transaction_global_slot(), d.versions, d.wins, d.scored, d.score_sum,
           d.clarity_sum, d.specificity_sum, d.actionability_sum, d.structure_sum, d.context_use_sum
      from days d order by d.agent
    on conflict (day, agent, slot) do update
      set versions = t.versions + excluded.versions, wins = t.wins + excluded.wins, scored = t.scored + excluded.scored,
          score_sum = t.score_sum + excluded.score_sum, clarity_sum = t.clarity_sum + excluded.clarity_sum,
          specificity_sum = t.specificity_sum + excluded.specificity_sum,
          actionability_sum = t.actionability_sum + excluded.actionability_sum,
          structure_sum = t.structure_sum + excluded.structure_sum, context_use_sum = t.context_use_sum + excluded.context_use_sum
  ), my_pairs as (
    insert into app_hidden.agent_pair_day_stats as s (user_id, day, agent, opponent, slot, wins, losses, ties)
    select me, today, p.agent, p.opponent, app_private.transaction_counter_slot(me), p.wins, p.losses, p.ties
      from pairs p order by 1, 2, 3, 4
    on conflict (user_id, day, agent, opponent, slot) do update
      set wins = s.wins + excluded.wins, losses = s.losses + excluded.losses, ties = s.ties + excluded.ties
  )
  insert into app_hidden.agent_pair_day_totals as t (day, agent, opponent, slot, wins, losses, ties)
  select today, p.agent, p.opponent, app_private.transaction_global_slot(), p.wins, p.losses, p.ties
    from pairs p order by 1, 2, 3
  on conflict (day, agent, opponent, slot) do update
    set wins = t.wins + excluded.wins, losses = t.losses + excluded.losses, ties = t.ties + excluded.ties;
  return set_config('prompter.new_run', 'off', true);
end;
$$;
