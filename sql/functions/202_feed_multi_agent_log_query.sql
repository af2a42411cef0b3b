-- multi_agent_log for feeds: the export's columns (sql/functions/072), one row
-- per prompt, for the prompts whose row may have changed after the snapshot
-- `since` (null: every prompt). A prompt's row changes with the prompt, any of
-- its versions or scores, or its best head, written or deleted, so the prompts
-- are gathered from each table's changes (by the written_in indexes) and only
-- their versions are ranked. With since null this is the export's query in
-- shape; test/feeds/content.test.ts checks that both give the same file.
create or replace function app_hidden.feed_multi_agent_log_query(typed boolean, excel boolean, since pg_snapshot, prompt_match text)
returns text
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  seed_agents constant text[] := array['syntax', 'structure', 'domain'];
  cell constant text := case when excel then 'app_hidden.excel_safe(%s)' else '%s' end;
  changed constant text := case when since is null then null else
    format('(%%1$s.written_in >= %s or %%1$s.written_in = any (%L::bigint[]))',
           pg_snapshot_xmax(since)::text, array(select x::text::bigint from pg_snapshot_xip(since) x)::text) end;
  agent_names text[];
  score_columns text;
  score_pivot text;
  restrict_prompts text := '';
  restrict_versions text := '';
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
  if since is not null then
    restrict_prompts := format($changes$
   and p.id in (select c.id from app_public.prompts c where %1$s
                union select c.prompt_id from app_public.prompt_versions c where %2$s
                union select v.prompt_id from app_public.judge_scores c join app_public.prompt_versions v on v.id = c.prompt_version_id where %3$s
                union select c.prompt_id from app_public.best_heads c where %4$s
                union select c.prompt_id from app_hidden.tombstones c where c.kind <> 'prompts' and c.prompt_id is not null and %5$s)$changes$,
      format(changed, 'c'), format(changed, 'c'), format(changed, 'c'), format(changed, 'c'), format(changed, 'c'));
    restrict_versions := ' where v.prompt_id in (select p.id from app_public.prompts p where true' || restrict_prompts || ')';
  end if;

  return format($query$select p.id as request_id,
       %1$s as "timestamp",
       %2$s as original_prompt,
       %3$s as final_prompt,
       %4$s as selected_agent,
       %5$s
  from app_public.prompts p
  left join app_public.best_heads head on head.prompt_id = p.id
  left join app_public.prompt_versions final on final.id = head.prompt_version_id
  left join (
    select ranked.prompt_id,
           %6$s
      from (select v.prompt_id, v.source, s.total,
                   row_number() over (partition by v.prompt_id, v.source
                                      order by v.created_at desc, v.id desc) as recency
              from app_public.prompt_versions v
              left join app_public.judge_scores s on s.prompt_version_id = v.id%7$s) ranked
     where ranked.recency = 1
     group by ranked.prompt_id
  ) scores on scores.prompt_id = p.id
 where %8$s%9$s
 order by p.id$query$,
    case when typed then 'p.created_at' else 'app_hidden.export_time(p.created_at)' end,
    format(cell, 'p.text'), format(cell, 'final.text'), format(cell, 'head.source'),
    score_columns, score_pivot, restrict_versions, prompt_match, restrict_prompts);
end;
$$;
comment on function app_hidden.feed_multi_agent_log_query(boolean, boolean, pg_snapshot, text) is
  'The SELECT a feed run of multi_agent_log reads: the prompts changed after the snapshot since (all when null).';
