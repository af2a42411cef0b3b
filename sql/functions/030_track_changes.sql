-- One statement-level trigger function for every table that holds a user's data.
-- It keeps two things in the same transaction as the write:
--   * app_hidden.data_versions: a counter per user, so exports can tell whether
--     the data they saw has changed since;
--   * app_hidden.agent_stats: per (user, agent) counts behind agent_effectiveness
--     (versions -> total, judge scores -> scored and score_sum, best heads -> wins).
-- Both are striped over slots that readers sum (see app_private.counter_slot), so
-- concurrent writers of one user add to different rows instead of queueing on one.
-- Transition tables make bulk writes cost one aggregate, not one update per row,
-- and both counters move in one statement.
create or replace function app_private.tg__track_changes() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
declare
  changed_rows text := case tg_op
    when 'INSERT' then 'select 1 as sign, * from new_rows'
    when 'DELETE' then 'select -1 as sign, * from old_rows'
    else 'select 1 as sign, * from new_rows union all select -1, * from old_rows'
  end;
  counter text := case tg_table_name
    when 'prompt_versions' then 'total'
    when 'judge_scores' then 'scored'
    when 'best_heads' then 'wins'
  end;
  score text := case tg_table_name when 'judge_scores' then 'c.total' else '0' end;
  agent text := case when tg_table_name = 'prompts' then 'null::text' else 'c.source' end;
begin
  -- Rows of a user being deleted need no bookkeeping: their counters go with them.
  -- A statement that touches one user (every write through the API) adds to a
  -- slot nobody else holds; a bulk statement over several users (the owner's
  -- maintenance) adds to slot 0 of each, in key order.
  execute format($sql$
    with changes as (
      select c.user_id, %1$s as agent, c.sign, %2$s as score from (%3$s) c
       where exists (select from app_public.users u where u.id = c.user_id)
    ),
    touched as (
      select t.user_id, case when count(*) over () = 1 then app_private.counter_slot(t.user_id) else 0 end as slot
        from (select distinct user_id from changes) t
    ),
    bump_version as (
      insert into app_hidden.data_versions as v (user_id, slot, version)
      select user_id, slot, 1 from touched order by 1, 2
      on conflict (user_id, slot) do update set version = v.version + 1
    )
    insert into app_hidden.agent_stats as s (user_id, agent, slot, %4$I, score_sum)
    select c.user_id, c.agent, t.slot, sum(c.sign), sum(c.sign * c.score)
      from changes c join touched t using (user_id)
     where %5$L
     group by 1, 2, 3
    having sum(c.sign) <> 0 or sum(c.sign * c.score) <> 0
     order by 1, 2, 3
    on conflict (user_id, agent, slot) do update
      set %4$I = s.%4$I + excluded.%4$I, score_sum = s.score_sum + excluded.score_sum
  $sql$, agent, score, changed_rows, coalesce(counter, 'total'), counter is not null);
  return null;
end;
$$;
