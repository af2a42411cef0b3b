-- The query behind multi_agent_log.csv. Its columns depend on the registered
-- agents, so it is built as text: the seed's columns in the seed's order, then
-- <agent>_score for every agent registered since, by name.
--   request_id, timestamp        the prompt's id and creation time
--   original_prompt              the prompt's text
--   final_prompt, selected_agent the best head's text and agent (empty when none)
--   <agent>_score                judge total of that agent's newest version of
--                                the prompt (empty when unscored or none)
-- One row per prompt, ordered by request_id. Everything but the prompt's own
-- columns comes from its row in app_hidden.multi_agent_log_rows, which the
-- writing transactions keep exact: the export reads two tables in prompt order
-- (a merge join of their primary keys) instead of ranking every version and
-- looking up every score, which cost about ten times a plain table's COPY.
-- A score is the JSON number's text, which is how numeric prints it too.
-- typed (JSONL, Parquet): the timestamp stays timestamptz and scores numeric.
-- prompt_match: a condition on the prompt p (an export's filters).
-- RLS applies to whoever runs the query: a user's own prompts, or everyone's.
create or replace function app_hidden.multi_agent_log_query(excel boolean default false, typed boolean default false,
                                                            prompt_match text default 'true') returns text
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  seed_agents constant text[] := array['syntax', 'structure', 'domain'];
  agent_names text[];
  cell constant text := case when excel then 'app_hidden.excel_safe(%s)' else '%s' end;
  score_columns text;
begin
  select seed_agents || coalesce(array_agg(a.name order by a.name), '{}')
    into agent_names
    from app_public.agents a
   where a.name <> all (seed_agents);
  select string_agg(format(case when typed then '(log.scores ->> %L)::numeric as %I' else 'log.scores ->> %L as %I' end,
                            agent, agent || '_score'), E',\n       ' order by position)
    into score_columns
    from unnest(agent_names) with ordinality as u(agent, position);

  return format($query$select p.id as request_id,
       %5$s as "timestamp",
       %1$s as original_prompt,
       %2$s as final_prompt,
       %3$s as selected_agent,
       %4$s
  from app_public.prompts p
  left join app_hidden.multi_agent_log_rows log on log.prompt_id = p.id%6$s
 order by p.id$query$,
    format(cell, 'p.text'), format(cell, 'log.final_prompt'), format(cell, 'log.selected_agent'), score_columns,
    case when typed then 'p.created_at' else 'app_hidden.export_time(p.created_at)' end,
    case when prompt_match = 'true' then '' else E'\n where ' || prompt_match end);
end;
$$;
comment on function app_hidden.multi_agent_log_query(boolean, boolean, text) is
  'The SELECT that multi_agent_log is exported from; with excel, text cells are made formula-safe; typed keeps timestamps and scores typed.';
