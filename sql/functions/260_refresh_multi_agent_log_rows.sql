-- Keeps app_hidden.multi_agent_log_rows exact: after every statement that
-- writes versions, judge scores or best heads, the rows of the prompts it
-- touched are computed again from those tables, in the same transaction. A
-- row whose figures differ is written again, stamped with the writing
-- transaction (written_in), which is how multi_agent_log's feed runs find the
-- rows that changed (sql/functions/202_feed_multi_agent_log_query.sql).
--
-- Two writers of one prompt take turns: each first locks the prompt's row
-- (FOR NO KEY UPDATE, which foreign key checks do not wait for), then computes
-- from a new snapshot (READ COMMITTED takes one per statement), so the second
-- sees what the first committed instead of writing over it with an older view.
-- Locks are taken in prompt order so that two bulk writes do not deadlock.
-- Prompts this transaction created (created_here) are invisible to every
-- other one, so nobody else can write them: they need no lock.
--
-- Writers that refresh the prompts they wrote themselves, once at their end
-- (app_public.record_run), set prompter.multi_agent_log_rows to 'deferred' for
-- their duration: the triggers (sql/rules/180_multi_agent_log_rows.sql, and the
-- inserts' one, sql/functions/236_bookkeeping_inserts.sql) then do not refresh
-- after each of their statements. Only the gateway's sessions become app_user,
-- and they cannot set it.
create or replace function app_private.refresh_multi_agent_log_rows(prompt_ids bigint[], created_here boolean default false)
returns void
language plpgsql volatile security definer
set search_path = pg_catalog
-- Planned once per session: planning the write for its prompts each time cost
-- ten times running it (1.6 ms against 0.16 ms a prompt, PG15). That one plan
-- probes each prompt's rows by key, for one prompt or 50,000 (generate_demo),
-- whatever size the tables had when it was made: a plan made while they were
-- small would otherwise scan all versions once per prompt.
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
as $$
begin
  perform 1 from unnest(prompt_ids) touched(id) join app_public.prompts p on p.id = touched.id
   where not created_here order by p.id for no key update of p;
  insert into app_hidden.multi_agent_log_rows as r (prompt_id, user_id, final_prompt, selected_agent, scores)
  select p.id, p.user_id, final.text, head.source,
         coalesce((select jsonb_object_agg(newest.source, s.total)
                     from (select distinct on (v.source) v.source, v.id
                             from app_public.prompt_versions v
                            where v.prompt_id = p.id
                            order by v.source, v.created_at desc, v.id desc) newest
                     left join app_public.judge_scores s on s.prompt_version_id = newest.id), '{}')
    from unnest(prompt_ids) touched(id)
    join app_public.prompts p on p.id = touched.id
    left join app_public.best_heads head on head.prompt_id = p.id
    left join app_public.prompt_versions final on final.id = head.prompt_version_id
   order by p.id
  on conflict (prompt_id) do update
    set final_prompt = excluded.final_prompt, selected_agent = excluded.selected_agent, scores = excluded.scores,
        written_in = excluded.written_in
    where (r.final_prompt, r.selected_agent, r.scores) is distinct from (excluded.final_prompt, excluded.selected_agent, excluded.scores);
end;
$$;
comment on function app_private.refresh_multi_agent_log_rows(bigint[], boolean) is
  'Computes the multi_agent_log rows of these (distinct) prompts again from their versions, scores and best head.';

-- Updates and deletes: the prompts of the old rows and of the new ones. A
-- deleted version's scores and best head go with it, and its prompt is
-- refreshed by the versions' own trigger.
create or replace function app_private.tg__multi_agent_log_changes() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
declare
  touched bigint[];
begin
  -- Each branch names only what its table has: PL/pgSQL parses a statement
  -- when it first runs it, for the table whose trigger runs it.
  if tg_table_name = 'judge_scores' then
    if tg_op = 'UPDATE' then
      touched := array(select n.prompt_version_id from new_rows n union select o.prompt_version_id from old_rows o);
    else
      touched := array(select o.prompt_version_id from old_rows o);
    end if;
    touched := array(select distinct v.prompt_id from app_public.prompt_versions v where v.id = any (touched));
  elsif tg_op = 'UPDATE' then
    touched := array(select n.prompt_id from new_rows n union select o.prompt_id from old_rows o);
  else
    touched := array(select distinct o.prompt_id from old_rows o);
  end if;
  perform app_private.refresh_multi_agent_log_rows(touched);
  return null;
end;
$$;
