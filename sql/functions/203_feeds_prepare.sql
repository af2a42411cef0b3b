-- Checks and completes a new feed (runs as the caller, so RLS and roles apply):
-- its options suit its format, its filters are known and well formed, only an
-- admin's feed may be global, and a scheduled feed's first run is due now.
create or replace function app_private.tg_feeds__prepare() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
  if new.user_id is null then
    raise exception 'Sign in to create a feed.' using errcode = 'PRLGN';
  end if;
  if new.kind is null or new.kind not in ('prompts', 'prompt_versions', 'judge_scores', 'multi_agent_log', 'agent_effectiveness') then
    raise exception 'Unknown feed kind "%"; choose one of: agent_effectiveness, judge_scores, multi_agent_log, prompt_versions, prompts.', new.kind
      using errcode = 'PFKND';
  end if;
  new.options := app_hidden.checked_format_options('feed', new.format, new.options);
  perform app_hidden.check_feed_filters(new.kind, new.filters);
  if new.is_global and not app_public.current_user_is_admin() then
    raise exception 'Only an admin''s feed may hold everyone''s rows (is_global).' using errcode = 'PFGLB';
  end if;
  new.paused := false;
  new.next_run_at := case when new.every is null then null else clock_timestamp() end;
  new.created_at := clock_timestamp();
  return new;
end;
$$;

-- Filters a kind takes: created_after and created_before (ISO timestamps; not
-- for agent_effectiveness) and agents (names of agents; for prompt_versions,
-- judge_scores and agent_effectiveness; all of them for an export of all), and
-- created_after before created_before. Shared with one-off exports' checks.
create or replace function app_hidden.check_feed_filters(kind text, filters jsonb) returns void
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  allowed text[] := case kind when 'agent_effectiveness' then array['agents']
                              when 'prompts' then array['created_after', 'created_before']
                              when 'multi_agent_log' then array['created_after', 'created_before']
                              else array['created_after', 'created_before', 'agents'] end;
  unknown text;
  field text;
begin
  if filters is null or jsonb_typeof(filters) <> 'object' then
    raise exception 'Filters must be an object such as {"created_after": "2025-01-01T00:00:00Z", "agents": ["syntax"]}.'
      using errcode = 'PFFLT';
  end if;
  select string_agg(key, ', ' order by key) into unknown from jsonb_object_keys(filters) key where key <> all (allowed);
  if unknown is not null then
    raise exception 'Filters not allowed for %: %. It takes: %.', kind, unknown, array_to_string(allowed, ', ')
      using errcode = 'PFFLT';
  end if;
  foreach field in array array['created_after', 'created_before'] loop
    if filters ? field and (jsonb_typeof(filters->field) <> 'string'
                            or filters->>field !~ '^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d(:?\d\d)?)?$'
                            or not app_hidden.is_timestamp(filters->>field)) then
      raise exception '% must be a timestamp such as "2025-01-31T09:15:00Z".', field using errcode = 'PFFLT';
    end if;
  end loop;
  -- Nested, so that a request without agents never plans a statement on
  -- app_public.agents (which would wait for any lock on it).
  if filters ? 'agents' then
    if jsonb_typeof(filters->'agents') <> 'array' or jsonb_array_length(filters->'agents') = 0
       or exists (select from jsonb_array_elements(filters->'agents') a
                   where jsonb_typeof(a) <> 'string'
                      or not exists (select from app_public.agents g where g.name = a #>> '{}')) then
      raise exception 'agents must be a list of names of registered agents, such as ["syntax", "domain"].' using errcode = 'PFFLT';
    end if;
  end if;
  if (filters->>'created_after')::timestamptz >= (filters->>'created_before')::timestamptz then
    raise exception 'created_after (%) must be before created_before (%): the range holds nothing.', filters->>'created_after', filters->>'created_before'
      using errcode = 'PFFLT';
  end if;
end;
$$;

-- Whether the text reads as a timestamp (PG 15 has no pg_input_is_valid).
create or replace function app_hidden.is_timestamp(value text) returns boolean
language plpgsql stable
set search_path = pg_catalog
as $$
begin
  perform value::timestamptz;
  return true;
exception when others then
  return false;
end;
$$;

-- A feed of yours, in the API's words: every is 20m, 1h, 1d, 1w or null (runs
-- on request only). Runs as the caller: RLS and tg_feeds__prepare check the rest.
create or replace function app_public.create_feed(kind text, format text, every text default null, filters jsonb default '{}',
                                                  options jsonb default '{}', is_global boolean default false)
returns app_public.feeds
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  feed app_public.feeds;
  schedules constant jsonb := '{"20m": "20 minutes", "1h": "1 hour", "1d": "1 day", "1w": "1 week"}';
begin
  if every is not null and not schedules ? every then
    raise exception 'every must be one of 20m, 1h, 1d, 1w, or null for runs on request only; not "%".', every using errcode = 'PFEVR';
  end if;
  insert into app_public.feeds (kind, format, every, filters, options, is_global)
  values (create_feed.kind, create_feed.format, (schedules->>every)::interval, coalesce(create_feed.filters, '{}'),
          coalesce(create_feed.options, '{}'), coalesce(create_feed.is_global, false))
  returning * into feed;
  return feed;
end;
$$;
comment on function app_public.create_feed(text, text, text, jsonb, jsonb, boolean) is
  'Creates a feed of yours: kind, format (csv, jsonl, parquet), every (20m, 1h, 1d, 1w or null), filters, options (gzip, excel) and, for an admin, is_global.';
