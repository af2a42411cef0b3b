-- What an export of a kind consists of: one CSV file per row, each with the
-- SELECT it is copied from (`COPY (query) TO STDOUT WITH (FORMAT csv, HEADER)`).
-- "all" is every other kind, in this order, from one snapshot. Columns are
-- listed explicitly and rows ordered by a unique key, so exporting unchanged
-- data twice gives the same bytes.
create or replace function app_hidden.export_parts(kind text, excel boolean default false)
returns table (file_name text, query text)
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  cell constant text := case when excel then 'app_hidden.excel_safe(%s)' else '%s' end;
begin
  return query
  select part.name || '.csv', part.query
    from (values
      (1, 'multi_agent_log', app_hidden.multi_agent_log_query(excel)),
      (2, 'prompt_versions', format(
        'select v.id, v.prompt_id, v.user_id, %s as text, %s as explanation, %s as source,'
        ' app_hidden.export_time(v.created_at) as created_at'
        ' from app_public.prompt_versions v order by v.id',
        format(cell, 'v.text'), format(cell, 'v.explanation'), format(cell, 'v.source'))),
      (3, 'judge_scores', format(
        'select s.id, s.prompt_version_id, s.user_id, %s as source, s.clarity, s.specificity,'
        ' s.actionability, s.structure, s.context_use, s.total, app_hidden.export_time(s.created_at) as created_at'
        ' from app_public.judge_scores s order by s.id',
        format(cell, 's.source'))),
      (4, 'agent_effectiveness', format(
        'select %s as agent, e.wins, e.total, e.win_rate, e.avg_score, e.scored'
        ' from app_public.agent_effectiveness e order by e.agent',
        format(cell, 'e.agent')))
    ) as part(position, name, query)
   where part.name = export_parts.kind or export_parts.kind = 'all'
   order by part.position;
  if not found then
    raise exception 'Unknown export kind "%"; choose one of: %.', export_parts.kind,
      (select string_agg(k.name, ', ' order by k.name) from app_public.export_kinds k)
      using errcode = 'PRKND';
  end if;
end;
$$;
comment on function app_hidden.export_parts(text, boolean) is
  'The CSV files an export of this kind holds and the SELECT each is copied from.';
