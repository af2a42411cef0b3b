create or replace function app_public.request_export(kind text, options jsonb default '{}', format text default 'csv',
                                                     filters jsonb default '{}') returns app_public.exports
language sql volatile
set search_path = pg_catalog
as $$
  insert into app_public.exports (kind, options, format, filters)
  values (request_export.kind, coalesce(request_export.options, '{}'), coalesce(request_export.format, 'csv'),
          coalesce(request_export.filters, '{}'))
  returning *;
$$;
comment on function app_public.request_export(text, jsonb, text, jsonb) is
  'Queues an export of your data (everyone''s, for an admin). Kinds: multi_agent_log, prompt_versions, judge_scores, agent_effectiveness, all. Formats: csv (options gzip, excel), jsonl (gzip), parquet. Filters: created_after, created_before, agents.';
