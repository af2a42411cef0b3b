create or replace function app_public.request_export(kind text, options jsonb default '{}') returns app_public.exports
language sql volatile
set search_path = pg_catalog
as $$
  insert into app_public.exports (kind, options)
  values (request_export.kind, coalesce(request_export.options, '{}'))
  returning *;
$$;
comment on function app_public.request_export(text, jsonb) is
  'Queues a CSV export of your data (everyone''s, for an admin). Kinds: multi_agent_log, prompt_versions, judge_scores, agent_effectiveness, all. Options: gzip, excel.';
