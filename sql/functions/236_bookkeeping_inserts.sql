-- The one insert trigger of prompt_versions, judge_scores and best_heads
-- (_500_track_insert, sql/rules/020_triggers.sql): each statement's rows go to
--   * agent_stats' counts (see sql/functions/030_track_changes.sql), in their
--     own slot rows per table (versions: the slot, scores: 32 up, heads: 64 up);
--   * the per-day figures (see sql/functions/231_track_agent_days.sql);
--   * their prompts' multi_agent_log rows (see
--     sql/functions/260_refresh_multi_agent_log_rows.sql), unless the writer
--     refreshes them itself at its end (prompter.multi_agent_log_rows 'deferred').
-- One trigger, not one per kind of figure: recordRun's new prompts skip it
-- (its WHEN clause, app_hidden.record_run_adds_figures; app_private.add_new_run_figures
-- adds their figures), and PostgreSQL reads and prepares each trigger's WHEN
-- clause again for every statement, which for three triggers a table cost
-- recordRun more than a tenth of its work. Each function runs its statements
-- without a PL/pgSQL expression of its own (the first one a transaction
-- evaluates costs about as much as a small query): the deferral is the refresh's WHERE.

-- Whether recordRun, as the owner, is adding a new prompt's figures itself
-- (prompter.new_run 'on', which only the owner's writes honour: a caller
-- setting it in their own session changes nothing). The insert triggers' WHEN
-- clause calls it: a call is a few nodes to read and prepare per statement,
-- where the same test written out in the clause (a setting, a role name) cost
-- three times as much. Made with the owner's name, which it compares with.
do $do$
begin
  execute format($function$
    create or replace function app_hidden.record_run_adds_figures() returns boolean
    language plpgsql stable
    set search_path = pg_catalog
    as $body$
    begin
      return coalesce(pg_catalog.current_setting('prompter.new_run', true) = 'on', false) and current_user = %L;
    end;
    $body$
  $function$, current_user);
end
$do$;
create or replace function app_private.tg__version_inserts() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  insert into app_hidden.agent_stats as s (user_id, agent, slot, total)
  select n.user_id, n.source, app_private.transaction_counter_slot(n.user_id), count(*)
    from new_rows n group by n.user_id, n.source order by 1, 2
  on conflict (user_id, agent, slot) do update set total = s.total + excluded.total;
  perform app_private.add_agent_days(array(
    select row(n.user_id, app_private.utc_day(n.created_at), n.source, count(*), 0, 0, 0, 0, 0, 0, 0, 0)::app_private.agent_day_change
      from new_rows n group by n.user_id, app_private.utc_day(n.created_at), n.source));
  perform app_private.refresh_multi_agent_log_rows(array(select distinct n.prompt_id from new_rows n))
   where pg_catalog.current_setting('prompter.multi_agent_log_rows', true) is distinct from 'deferred';
  return null;
end;
$$;

create or replace function app_private.tg__score_inserts() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  insert into app_hidden.agent_stats as s (user_id, agent, slot, scored, score_sum)
  select n.user_id, n.source, app_private.transaction_counter_slot(n.user_id) + 32, count(*), sum(n.total)
    from new_rows n group by n.user_id, n.source order by 1, 2
  on conflict (user_id, agent, slot) do update set scored = s.scored + excluded.scored, score_sum = s.score_sum + excluded.score_sum;
  perform app_private.apply_score_changes('{}', array(
    select row(n.prompt_version_id, n.source, n.total, n.clarity, n.specificity, n.actionability, n.structure, n.context_use)::app_private.judged_version
      from new_rows n));
  perform app_private.refresh_multi_agent_log_rows(array(
    select distinct v.prompt_id from new_rows n join app_public.prompt_versions v on v.id = n.prompt_version_id))
   where pg_catalog.current_setting('prompter.multi_agent_log_rows', true) is distinct from 'deferred';
  return null;
end;
$$;

create or replace function app_private.tg__best_head_inserts() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  insert into app_hidden.agent_stats as s (user_id, agent, slot, wins)
  select n.user_id, n.source, app_private.transaction_counter_slot(n.user_id) + 64, count(*)
    from new_rows n group by n.user_id, n.source order by 1, 2
  on conflict (user_id, agent, slot) do update set wins = s.wins + excluded.wins;
  perform app_private.apply_head_changes('{}', '{}', array(select n.prompt_version_id from new_rows n order by n.prompt_id),
                                         array(select n.source from new_rows n order by n.prompt_id));
  perform app_private.refresh_multi_agent_log_rows(array(select distinct n.prompt_id from new_rows n))
   where pg_catalog.current_setting('prompter.multi_agent_log_rows', true) is distinct from 'deferred';
  return null;
end;
$$;
