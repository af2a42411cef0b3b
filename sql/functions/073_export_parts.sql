-- What an export of a kind consists of: one file per row, named without its
-- extension (the format adds it), each with the SELECT it is read from (for
-- CSV, `COPY (query) TO STDOUT WITH (FORMAT csv, HEADER)`). "all" is every
-- other kind, in this order, from one snapshot. Columns are listed explicitly
-- and rows ordered by a unique key, so exporting unchanged data twice gives the
-- same bytes.
-- typed (JSONL, Parquet): timestamps stay timestamptz, scores numeric.
-- filters (checked by app_hidden.check_feed_filters): created_after and
-- created_before on created_at (the prompt's for multi_agent_log), agents on
-- the version's or score's agent and agent_effectiveness's; each file of "all"
-- takes the ones its kind takes.
create or replace function app_hidden.export_parts(kind text, excel boolean default false, typed boolean default false,
                                                   filters jsonb default '{}')
returns table (file_name text, query text)
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  cell constant text := case when excel then 'app_hidden.excel_safe(%s)' else '%s' end;
  time_cell constant text := case when typed then '%s' else 'app_hidden.export_time(%s)' end;
  created_match text;
  agent_match text;
begin
  select m.created_match, m.agent_match into created_match, agent_match from app_hidden.filter_matches(coalesce(filters, '{}')) m;
  return query
  select part.name, part.query
    from (values
      (1, 'multi_agent_log', app_hidden.multi_agent_log_query(excel, typed, format(created_match, 'p'))),
      (2, 'prompt_versions', format(
        'select v.id, v.prompt_id, v.user_id, %s as text, %s as explanation, %s as source,'
        ' %s as created_at'
        ' from app_public.prompt_versions v%s order by v.id',
        format(cell, 'v.text'), format(cell, 'v.explanation'), format(cell, 'v.source'), format(time_cell, 'v.created_at'),
        app_hidden.where_clause(format(created_match, 'v'), format(agent_match, 'v', 'source')))),
      (3, 'judge_scores', format(
        'select s.id, s.prompt_version_id, s.user_id, %s as source, s.clarity, s.specificity,'
        ' s.actionability, s.structure, s.context_use, s.total, %s as created_at'
        ' from app_public.judge_scores s%s order by s.id',
        format(cell, 's.source'), format(time_cell, 's.created_at'),
        app_hidden.where_clause(format(created_match, 's'), format(agent_match, 's', 'source')))),
      (4, 'agent_effectiveness', format(
        'select %s as agent, e.wins, e.total, e.win_rate, e.avg_score, e.scored'
        ' from app_public.agent_effectiveness e%s order by e.agent',
        format(cell, 'e.agent'), app_hidden.where_clause(format(agent_match, 'e', 'agent'))))
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
comment on function app_hidden.export_parts(text, boolean, boolean, jsonb) is
  'The files an export of this kind holds and the SELECT each is read from.';

-- ' where a and b' of the conditions other than 'true'; nothing when none is.
create or replace function app_hidden.where_clause(variadic conditions text[]) returns text
language sql immutable
set search_path = pg_catalog
as $$
  select coalesce(' where ' || string_agg(c, ' and ' order by n), '')
    from unnest(conditions) with ordinality as u(c, n)
   where c <> 'true';
$$;
