-- The query behind multi_agent_log.csv. Its columns depend on the registered
-- agents, so it is built as text: the seed's columns in the seed's order, then
-- <agent>_score for every agent registered since, by name.
--   request_id, timestamp        the prompt's id and creation time
--   original_prompt              the prompt's text
--   final_prompt, selected_agent the best head's text and agent (empty when none)
--   <agent>_score                judge total of that agent's newest version of
--                                the prompt (empty when unscored or none)
-- One row per prompt, ordered by request_id. The scores come from one pass over
-- the versions (ranked per prompt and agent, then pivoted), not from a
-- subquery per prompt and agent: at a million prompts that halves the time.
-- RLS applies to whoever runs the query: a user's own prompts, or everyone's.
create or replace function app_hidden.multi_agent_log_query(excel boolean default false) returns text
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  seed_agents constant text[] := array['syntax', 'structure', 'domain'];
  agent_names text[];
  cell constant text := case when excel then 'app_hidden.excel_safe(%s)' else '%s' end;
  score_columns text;
  score_pivot text;
begin
  select seed_agents || coalesce(array_agg(a.name order by a.name), '{}')
    into agent_names
    from app_public.agents a
   where a.name <> all (seed_agents);
  select string_agg(format('scores.%I', agent || '_score'), ', ' order by position),
         string_agg(format('max(ranked.total) filter (where ranked.source = %L) as %I', agent, agent || '_score'),
                    E',\n           ' order by position)
    into score_columns, score_pivot
    from unnest(agent_names) with ordinality as u(agent, position);

  return format($query$select p.id as request_id,
       app_hidden.export_time(p.created_at) as "timestamp",
       %1$s as original_prompt,
       %2$s as final_prompt,
       %3$s as selected_agent,
       %4$s
  from app_public.prompts p
  left join app_public.best_heads head on head.prompt_id = p.id
  left join app_public.prompt_versions final on final.id = head.prompt_version_id
  left join (
    select ranked.prompt_id,
           %5$s
      from (select v.prompt_id, v.source, s.total,
                   row_number() over (partition by v.prompt_id, v.source
                                      order by v.created_at desc, v.id desc) as recency
              from app_public.prompt_versions v
              left join app_public.judge_scores s on s.prompt_version_id = v.id) ranked
     where ranked.recency = 1
     group by ranked.prompt_id
  ) scores on scores.prompt_id = p.id
 order by p.id$query$,
    format(cell, 'p.text'), format(cell, 'final.text'), format(cell, 'head.source'),
    score_columns, score_pivot);
end;
$$;
comment on function app_hidden.multi_agent_log_query(boolean) is
  'The SELECT that multi_agent_log.csv is exported from; with excel, text cells are made formula-safe.';
