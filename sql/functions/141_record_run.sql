-- Fails the run, naming the element that is wrong (as in versions[2].scores.clarity).
create or replace function app_hidden.reject_run_element(element text, problem text) returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
begin
  raise exception '%: %', element, problem
    using errcode = 'PRRUN', detail = json_build_object('element', element)::text;
end;
$$;

-- A whole agent run in one call: a new prompt (or one of the caller's), its
-- versions with their judge scores, and the best head, written in one
-- transaction or not at all. It checks each element first only to name the one
-- that is wrong; the tables' constraints, foreign keys and bookkeeping triggers
-- apply as to single writes. With an idempotency key, a retried run returns the
-- first run's result instead of writing again.
-- Security definer, for speed: RLS and the column grants make a single write
-- prove its rows are the caller's row by row (policies, and the source triggers
-- that look each scored or crowned version up under RLS). This function names
-- the caller in every row it writes (user_id) and every row it reads, and
-- copies each version's agent to its score and best head itself, which cuts
-- the database's work per run by about an eighth. Only app_user (and app_admin
-- through it) may execute it (sql/rules/140_record_run.sql).
--
-- run: {"idempotency_key": "...", "prompt": "text" | "prompt_id": 1,
--       "versions": [{"agent": "syntax", "text": "...", "explanation": "...",
--                     "scores": {"clarity": 8, "specificity": 7, "actionability": 6,
--                                "structure": 9, "context_use": 5}}, ...],
--       "best_version": 0}
-- result: {"prompt_id": 1, "version_ids": [...], "best_version_id": ..., "replayed": false}
create or replace function app_public.record_run(run jsonb) returns jsonb
language plpgsql volatile security definer
set search_path = pg_catalog
-- Its statements read and write a few rows by key whatever the tables hold, so
-- one plan serves every call: left to choose, PostgreSQL kept planning some of
-- them again on every call (130,000 of recordRun's 4.8 million instructions).
set plan_cache_mode = force_generic_plan
as $$
declare
  criteria constant text[] := array['clarity', 'specificity', 'actionability', 'structure', 'context_use'];
  run_fields constant text[] := array['idempotency_key', 'prompt', 'prompt_id', 'versions', 'best_version'];
  version_fields constant text[] := array['agent', 'text', 'explanation', 'scores'];
  me constant bigint := app_public.current_user_id();
  key text;
  digest text;
  earlier app_hidden.recorded_runs;
  version jsonb;
  element text;
  field text;
  version_count int;
  agent_names text[];
  best int;
  new_prompt_id bigint;
  version_ids bigint[];
  outcome jsonb;
  -- What set_config returns: an assignment costs less than PERFORM, which runs a whole query.
  new_run text;
  deferred text;
begin
  if me is null then
    raise exception 'Sign in to record a run.' using errcode = 'PRLGN';
  end if;
  if jsonb_typeof(run) is distinct from 'object' then
    perform app_hidden.reject_run_element('run', 'a run is a JSON object.');
  end if;
  -- Unknown keys are looked for with a query only when there are some: a
  -- query per version and per scores would cost more than writing the run.
  if run - run_fields <> '{}' then
    for field in select jsonb_object_keys(run - run_fields) loop
      perform app_hidden.reject_run_element(field, 'unknown field; a run has idempotency_key, prompt or prompt_id, versions and best_version.');
    end loop;
  end if;
  if run ? 'idempotency_key' and (jsonb_typeof(run->'idempotency_key') <> 'string' or length(run->>'idempotency_key') not between 1 and 200) then
    perform app_hidden.reject_run_element('idempotency_key', 'an idempotency key is a string of 1 to 200 characters.');
  end if;
  if (run ? 'prompt') = (run ? 'prompt_id') then
    perform app_hidden.reject_run_element('prompt', 'give either prompt (the text of a new prompt) or prompt_id (one of your prompts).');
  end if;
  if run ? 'prompt' and (jsonb_typeof(run->'prompt') <> 'string' or run->>'prompt' !~ '\S') then
    perform app_hidden.reject_run_element('prompt', 'the prompt is a text that is not blank.');
  end if;
  if run ? 'prompt_id' and (jsonb_typeof(run->'prompt_id') <> 'number' or run->>'prompt_id' !~ '^[1-9][0-9]{0,17}$') then
    perform app_hidden.reject_run_element('prompt_id', 'a prompt id is a positive whole number.');
  end if;
  if jsonb_typeof(run->'versions') is distinct from 'array' or jsonb_array_length(run->'versions') not between 1 and 1000 then
    perform app_hidden.reject_run_element('versions', 'a run has a list of 1 to 1000 versions.');
  end if;
  version_count := jsonb_array_length(run->'versions');
  -- One query for every version's agent, not one per version.
  agent_names := array(select a.name from app_public.agents a);
  for i in 0 .. version_count - 1 loop
    version := run->'versions'->i;
    element := format('versions[%s]', i);
    if jsonb_typeof(version) <> 'object' then
      perform app_hidden.reject_run_element(element, 'a version is a JSON object.');
    end if;
    if version - version_fields <> '{}' then
      for field in select jsonb_object_keys(version - version_fields) loop
        perform app_hidden.reject_run_element(element || '.' || field, 'unknown field; a version has agent, text, explanation and scores.');
      end loop;
    end if;
    if jsonb_typeof(version->'agent') is distinct from 'string' or not (version->>'agent' = any (agent_names)) then
      perform app_hidden.reject_run_element(element || '.agent', 'there is no agent of this name.');
    end if;
    if jsonb_typeof(version->'text') is distinct from 'string' or version->>'text' !~ '\S' then
      perform app_hidden.reject_run_element(element || '.text', 'a version''s text is a text that is not blank.');
    end if;
    if coalesce(jsonb_typeof(version->'explanation'), 'null') <> 'null'
       and (jsonb_typeof(version->'explanation') <> 'string' or version->>'explanation' !~ '\S') then
      perform app_hidden.reject_run_element(element || '.explanation', 'an explanation is a text that is not blank, or null.');
    end if;
    if coalesce(jsonb_typeof(version->'scores'), 'null') <> 'null' then
      if jsonb_typeof(version->'scores') <> 'object' then
        perform app_hidden.reject_run_element(element || '.scores', 'scores are a JSON object with a score per criterion, or null.');
      end if;
      if (version->'scores') - criteria <> '{}' then
        for field in select jsonb_object_keys((version->'scores') - criteria) loop
          perform app_hidden.reject_run_element(element || '.scores.' || field, 'unknown criterion; the criteria are ' || array_to_string(criteria, ', ') || '.');
        end loop;
      end if;
      foreach field in array criteria loop
        if not (case when jsonb_typeof(version->'scores'->field) = 'number'
                     then (version->'scores'->>field)::numeric between 0 and 10 else false end) then
          perform app_hidden.reject_run_element(element || '.scores.' || field, 'a score is a number from 0 to 10.');
        end if;
      end loop;
    end if;
  end loop;
  if coalesce(jsonb_typeof(run->'best_version'), 'null') <> 'null' then
    if not (case when jsonb_typeof(run->'best_version') = 'number' and run->>'best_version' ~ '^[0-9]{1,4}$'
                 then (run->>'best_version')::int < version_count else false end) then
      perform app_hidden.reject_run_element('best_version', format('the best version is the index of one of the run''s versions, 0 to %s.', version_count - 1));
    end if;
    best := (run->>'best_version')::int;
  end if;

  key := run->>'idempotency_key';
  if key is not null then
    digest := md5(run::text);
    -- Claims the key before writing: a retry arriving while the first attempt
    -- still runs waits on the key's row until that attempt ends, then finds its
    -- outcome (a row only this user's runs write, where an advisory key could be
    -- held by anyone). A failed run rolls its claim back with everything else.
    insert into app_hidden.recorded_runs (user_id, idempotency_key, run_digest, result) values (me, key, digest, '{}')
    on conflict (user_id, idempotency_key) do nothing;
    if not found then
      select * into earlier from app_hidden.recorded_runs r where r.user_id = me and r.idempotency_key = key;
      if earlier.run_digest <> digest then
        raise exception 'The idempotency key % was used for a different run; use a new key for a new run.', key
          using errcode = 'PRIDM';
      end if;
      return earlier.result || '{"replayed": true}';
    end if;
  end if;

  if run ? 'prompt' then
    -- The figures and multi_agent_log row of a new prompt's run are added at
    -- once below; the insert triggers that would add them skip this run.
    new_run := set_config('prompter.new_run', 'on', true);
    insert into app_public.prompts (user_id, text) values (me, run->>'prompt') returning id into new_prompt_id;
  else
    -- Its multi_agent_log row is written once, below, not after each statement.
    deferred := set_config('prompter.multi_agent_log_rows', 'deferred', true);
    -- Another user's prompt and a missing one read the same.
    select p.id into new_prompt_id from app_public.prompts p where p.id = (run->>'prompt_id')::bigint and p.user_id = me;
    if not found then
      raise exception 'prompt_id: there is no prompt % of yours.', run->>'prompt_id'
        using errcode = 'PRNFD', detail = json_build_object('element', 'prompt_id')::text;
    end if;
  end if;

  -- Identities are drawn in insert order, which follows the ORDER BY: the n-th
  -- smallest new id is the n-th version of the run.
  with inserted as (
    insert into app_public.prompt_versions (user_id, prompt_id, text, explanation, source)
    select me, new_prompt_id, v->>'text', v->>'explanation', v->>'agent'
      from jsonb_array_elements(run->'versions') with ordinality e(v, n)
     order by n
    returning id
  )
  select array_agg(id order by id) into version_ids from inserted;

  insert into app_public.judge_scores (user_id, prompt_version_id, source, clarity, specificity, actionability, structure, context_use)
  select me, version_ids[n], v->>'agent', (v->'scores'->>'clarity')::numeric, (v->'scores'->>'specificity')::numeric,
         (v->'scores'->>'actionability')::numeric, (v->'scores'->>'structure')::numeric, (v->'scores'->>'context_use')::numeric
    from jsonb_array_elements(run->'versions') with ordinality e(v, n)
   where jsonb_typeof(v->'scores') = 'object';

  -- A new prompt has no best head to replace: a plain insert spares the run
  -- the update triggers that ON CONFLICT DO UPDATE fires even when nothing conflicts.
  if best is not null and run ? 'prompt' then
    insert into app_public.best_heads (user_id, prompt_id, prompt_version_id, source)
    values (me, new_prompt_id, version_ids[best + 1], run->'versions'->best->>'agent');
  elsif best is not null then
    insert into app_public.best_heads (user_id, prompt_id, prompt_version_id, source)
    values (me, new_prompt_id, version_ids[best + 1], run->'versions'->best->>'agent')
    on conflict (prompt_id) do update set prompt_version_id = excluded.prompt_version_id;
  end if;
  if new_run is not null then
    new_run := app_private.add_new_run_figures(me, run, best, new_prompt_id);
  else
    perform app_private.refresh_multi_agent_log_rows(array[new_prompt_id]),
            set_config('prompter.multi_agent_log_rows', '', true);
  end if;

  outcome := jsonb_build_object('prompt_id', new_prompt_id, 'version_ids', to_jsonb(version_ids),
                               'best_version_id', version_ids[best + 1]);
  if key is not null then
    update app_hidden.recorded_runs r set result = outcome where r.user_id = me and r.idempotency_key = key;
  end if;
  return outcome || '{"replayed": false}';
end;
$$;
comment on function app_public.record_run(jsonb) is
  E'Records a whole agent run at once: a new prompt (prompt) or one of yours (prompt_id), its versions (agent, text, explanation, scores) and the index of the best version; all or nothing. A retry with the same idempotency_key returns the first result (replayed: true).';
