-- One statement-level trigger function for every table that holds a user's data.
-- It keeps two things in the same transaction as the write:
--   * app_hidden.data_versions: a counter per user, so exports can tell whether
--     the data they saw has changed since;
--   * app_hidden.agent_stats: per (user, agent) counts behind agent_effectiveness
--     (versions -> total, judge scores -> scored and score_sum, best heads -> wins).
-- Transition tables make bulk writes cost one aggregate, not one update per row.
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
  score text := case tg_table_name when 'judge_scores' then 'total' else '0' end;
begin
  -- Rows of a user being deleted need no bookkeeping: their counters go with them.
  execute format($sql$
    insert into app_hidden.data_versions as v (user_id, version)
    select distinct c.user_id, 1 from (%s) c
     where exists (select from app_public.users u where u.id = c.user_id)
     order by 1
    on conflict (user_id) do update set version = v.version + 1
  $sql$, changed_rows);

  if counter is not null then
    execute format($sql$
      insert into app_hidden.agent_stats as s (user_id, agent, %1$I, score_sum)
      select c.user_id, c.source, sum(c.sign), sum(c.sign * %2$s)
        from (%3$s) c
       where exists (select from app_public.users u where u.id = c.user_id)
       group by 1, 2
      having sum(c.sign) <> 0 or sum(c.sign * %2$s) <> 0
       order by 1, 2
      on conflict (user_id, agent) do update
        set %1$I = s.%1$I + excluded.%1$I, score_sum = s.score_sum + excluded.score_sum
    $sql$, counter, score, changed_rows);
  end if;
  return null;
end;
$$;
