-- Demo data, set-based: per prompt one version from each default agent, a judge
-- score for each version and the best-scoring version as best head. Works in
-- chunks so each statement's transition tables and sorts stay a manageable size.
create or replace function app_private.generate_demo(owner_id bigint, prompt_count int, chunk_size int default 50000)
returns bigint
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  done int := 0;
  this_chunk int;
  chunk_prompts bigint[];
begin
  if prompt_count < 0 then
    raise exception 'The number of prompts must be zero or more.' using errcode = 'PRARG';
  end if;
  -- Each chunk's multi_agent_log rows are written once, at its end.
  perform set_config('prompter.multi_agent_log_rows', 'deferred', true);
  while done < prompt_count loop
    this_chunk := least(chunk_size, prompt_count - done);
    with new_prompts as (
      insert into app_public.prompts (user_id, text)
      select owner_id,
             format('Write a %s guide to %s for %s readers (#%s).',
               (array['short', 'detailed', 'step-by-step', 'friendly'])[1 + (i % 4)],
               (array['SQL window functions', 'sourdough baking', 'tax returns', 'bicycle repair', 'job interviews'])[1 + (i % 5)],
               (array['beginner', 'expert', 'busy'])[1 + (i % 3)],
               done + i)
        from generate_series(1, this_chunk) i
      returning id, text
    ), new_versions as (
      insert into app_public.prompt_versions (prompt_id, user_id, text, explanation, source)
      select p.id, owner_id, format('[%s] %s', a.name, p.text), format('Improved by the %s agent.', a.name), a.name
        from new_prompts p cross join (values ('syntax'), ('structure'), ('domain')) a(name)
      returning id, prompt_id, source
    ), new_scores as (
      insert into app_public.judge_scores
        (prompt_version_id, user_id, source, clarity, specificity, actionability, structure, context_use)
      select v.id, owner_id, v.source,
             round((random() * 10)::numeric, 1), round((random() * 10)::numeric, 1),
             round((random() * 10)::numeric, 1), round((random() * 10)::numeric, 1),
             round((random() * 10)::numeric, 1)
        from new_versions v
      returning prompt_version_id, source, total
    ), new_heads as (
      insert into app_public.best_heads (prompt_id, prompt_version_id, user_id, source)
      select distinct on (v.prompt_id) v.prompt_id, v.id, owner_id, v.source
        from new_versions v join new_scores s on s.prompt_version_id = v.id
       order by v.prompt_id, s.total desc, v.id
    )
    select array_agg(p.id) into chunk_prompts from new_prompts p;
    perform app_private.refresh_multi_agent_log_rows(chunk_prompts, true);
    done := done + this_chunk;
  end loop;
  perform set_config('prompter.multi_agent_log_rows', '', true);
  return done;
end;
$$;
