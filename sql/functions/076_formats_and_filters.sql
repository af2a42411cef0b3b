-- What feeds and one-off exports share: the file formats with the options each
-- takes, and the filters' SQL (which filters a kind takes, and their values,
-- are checked by app_hidden.check_feed_filters).

-- The options normalised for the format: csv takes gzip and excel, jsonl gzip,
-- parquet none (its files are compressed already). subject names the caller's
-- thing in the messages ("feed", "export").
create or replace function app_hidden.checked_format_options(subject text, file_format text, options jsonb) returns jsonb
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  unknown text;
begin
  if file_format is null or file_format not in ('csv', 'jsonl', 'parquet') then
    raise exception 'Unknown % format "%"; choose one of: csv, jsonl, parquet.', subject, file_format using errcode = 'PFFMT';
  end if;
  if options is null or jsonb_typeof(options) <> 'object' then
    raise exception '% options must be an object such as {"gzip": true}.', initcap(subject) using errcode = 'PROPT';
  end if;
  select string_agg(key, ', ' order by key) into unknown
    from jsonb_each(options)
   where jsonb_typeof(value) <> 'boolean'
      or key <> all (case file_format when 'csv' then array['gzip', 'excel'] when 'jsonl' then array['gzip'] else array[]::text[] end);
  if unknown is not null then
    raise exception 'Options not allowed for % %s: %. csv takes gzip and excel, jsonl takes gzip (true or false); parquet files are compressed already.',
      file_format, subject, unknown using errcode = 'PROPT';
  end if;
  return case file_format
    when 'csv' then jsonb_build_object('gzip', coalesce((options->>'gzip')::boolean, false), 'excel', coalesce((options->>'excel')::boolean, false))
    when 'jsonl' then jsonb_build_object('gzip', coalesce((options->>'gzip')::boolean, false))
    else '{}' end;
end;
$$;

-- The conditions of checked filters, as format() templates: %1$s is the
-- table's alias; the agent condition's %2$I is the column naming the agent.
-- 'true' for a filter not given. Timestamps without a zone are read in the
-- session's TimeZone, which feed runs and exports set to UTC.
create or replace function app_hidden.filter_matches(filters jsonb, out created_match text, out agent_match text)
language plpgsql stable
set search_path = pg_catalog
as $$
begin
  created_match := 'true';
  agent_match := 'true';
  if filters ? 'created_after' then
    created_match := format('%%1$s.created_at >= %L::timestamptz', filters->>'created_after');
  end if;
  if filters ? 'created_before' then
    created_match := created_match || format(' and %%1$s.created_at < %L::timestamptz', filters->>'created_before');
  end if;
  if filters ? 'agents' then
    agent_match := format('%%1$s.%%2$I = any (%L::text[])', array(select jsonb_array_elements_text(filters->'agents')));
  end if;
end;
$$;
