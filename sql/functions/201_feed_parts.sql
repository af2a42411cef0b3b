-- What a run of a feed consists of: a file of rows to upsert (by the kind's
-- key) and a file of keys to delete, each with the SELECT it is read from, for
-- the rows that changed after the snapshot `since` (null: run 1, everything).
-- The caller reads them in one REPEATABLE READ transaction, whose snapshot is
-- the run's upper bound; RLS decides whose rows they are.
--   * changed: the row's last writer is not visible in `since`: it started
--     at or after since's xmax, or was running then (in since's xip list).
--     Both are lookups in the written_in index (a range and a few values),
--     so the cost follows the changes, not the table, and the planner
--     estimates them from the column's statistics.
--   * deleted: a tombstone written after `since` (keys are identities, never
--     used again), and a changed row the filters no longer take (an agent
--     renamed away).
-- typed: timestamps stay timestamptz (JSONL, Parquet); otherwise they are text
-- as exports write them, and with excel every text cell is made formula-safe.
-- Filters: created_after / created_before (timestamps, on the row's created_at,
-- the prompt's for multi_agent_log) and agents (names; versions and scores by
-- their agent, agent_effectiveness by agent).
create or replace function app_hidden.feed_parts(kind text, typed boolean, excel boolean, since pg_snapshot, filters jsonb)
returns table (file_name text, query text)
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  changed constant text := case when since is null then 'true' else
    format('(%%1$s.written_in >= %s or %%1$s.written_in = any (%L::bigint[]))',
           pg_snapshot_xmax(since)::text, array(select x::text::bigint from pg_snapshot_xip(since) x)::text) end;
  cell constant text := case when excel then 'app_hidden.excel_safe(%s)' else '%s' end;
  time_cell constant text := case when typed then '%s' else 'app_hidden.export_time(%s)' end;
  created_match text;
  agent_match text;
  table_name text;
  columns text;
  key text := 'id';
  matches text;
begin
  select m.created_match, m.agent_match into created_match, agent_match from app_hidden.filter_matches(filters) m;

  case kind
    when 'agent_effectiveness' then
      -- A leaderboard per run: all of it, whatever changed.
      return query select 'agent_effectiveness', format(
        'select %s as agent, e.wins, e.total, e.win_rate, e.avg_score, e.scored from app_public.agent_effectiveness e where %s order by e.agent',
        format(cell, 'e.agent'), format(agent_match, 'e', 'agent'));
      return;
    when 'multi_agent_log' then
      return query select 'multi_agent_log', app_hidden.feed_multi_agent_log_query(typed, excel, since, format(created_match, 'p'));
      table_name := 'prompts';
      matches := format(created_match, 'a');
      key := 'request_id';
    when 'prompts' then
      table_name := 'prompts';
      columns := format('a.id, a.user_id, %s as text, %s as created_at', format(cell, 'a.text'), format(time_cell, 'a.created_at'));
      matches := format(created_match, 'a');
    when 'prompt_versions' then
      table_name := 'prompt_versions';
      columns := format('a.id, a.prompt_id, a.user_id, %s as text, %s as explanation, %s as source, %s as created_at',
        format(cell, 'a.text'), format(cell, 'a.explanation'), format(cell, 'a.source'), format(time_cell, 'a.created_at'));
      matches := format(created_match, 'a') || ' and ' || format(agent_match, 'a', 'source');
    when 'judge_scores' then
      table_name := 'judge_scores';
      columns := format('a.id, a.prompt_version_id, a.user_id, %s as source, a.clarity, a.specificity, a.actionability,'
        ' a.structure, a.context_use, a.total, %s as created_at', format(cell, 'a.source'), format(time_cell, 'a.created_at'));
      matches := format(created_match, 'a') || ' and ' || format(agent_match, 'a', 'source');
    else
      raise exception 'Unknown feed kind "%"; choose one of: agent_effectiveness, judge_scores, multi_agent_log, prompt_versions, prompts.', kind
        using errcode = 'PFKND';
  end case;

  if columns is not null then
    return query select table_name, format('select %s from app_public.%I a where %s and %s order by a.id',
      columns, table_name, format(changed, 'a'), matches);
  end if;
  -- The deleted keys, once each, in order.
  return query select 'deleted', case when since is null then
      format('select null::bigint as %I where false', key)
    else format(
      'select distinct d.id as %1$I from ('
      ' select t.row_id as id from app_hidden.tombstones t where t.kind = %2$L and %3$s%4$s) d order by 1',
      key, table_name, format(changed, 't'),
      case when filters = '{}' then '' else
        format(' union all select a.id from app_public.%I a where %s and not (%s)', table_name, format(changed, 'a'), matches) end) end;
end;
$$;
comment on function app_hidden.feed_parts(text, boolean, boolean, pg_snapshot, jsonb) is
  'The files a feed run of this kind holds (rows to upsert, keys to delete) and the SELECT each is read from.';
