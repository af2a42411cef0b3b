-- One statement-level trigger function for every table that holds a user's data.
-- It keeps two things in the same transaction as the write:
--   * app_hidden.data_versions: a counter per user, so exports can tell whether
--     the data they saw has changed since;
--   * app_hidden.agent_stats: per (user, agent) counts behind agent_effectiveness
--     (versions -> total, judge scores -> scored and score_sum, best heads -> wins).
-- Both are striped over slots that readers sum (see app_private.counter_slot), so
-- concurrent writers of one user add to different rows instead of queueing on one.
-- Transition tables make bulk writes cost one aggregate, not one update per row.
-- The queries are static (PL/pgSQL compiles this function per table and keeps
-- their plans for the session), so a one-row write does not plan SQL each time.
create or replace function app_private.tg__track_changes() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
declare
  counter constant text := case tg_table_name
    when 'prompt_versions' then 'total'
    when 'judge_scores' then 'scored'
    when 'best_heads' then 'wins'
  end;
  added_users bigint[] := '{}';
  added_agents text[] := '{}';
  added_scores numeric[] := '{}';
  removed_users bigint[] := '{}';
  removed_agents text[] := '{}';
  removed_scores numeric[] := '{}';
  touched_users bigint[];
  remembered text;
  chosen_slot int;
begin
  -- Each branch names only columns its table has: PL/pgSQL parses a statement
  -- when it first runs it, for the table whose trigger runs it.
  if tg_op in ('INSERT', 'UPDATE') then
    case tg_table_name
      when 'prompts' then
        select array_agg(n.user_id), array_agg(null::text), array_agg(0::numeric) into added_users, added_agents, added_scores from new_rows n;
      when 'judge_scores' then
        select array_agg(n.user_id), array_agg(n.source), array_agg(n.total) into added_users, added_agents, added_scores from new_rows n;
      else
        select array_agg(n.user_id), array_agg(n.source), array_agg(0::numeric) into added_users, added_agents, added_scores from new_rows n;
    end case;
  end if;
  if tg_op in ('DELETE', 'UPDATE') then
    case tg_table_name
      when 'prompts' then
        select array_agg(o.user_id), array_agg(null::text), array_agg(0::numeric) into removed_users, removed_agents, removed_scores from old_rows o;
      when 'judge_scores' then
        select array_agg(o.user_id), array_agg(o.source), array_agg(o.total) into removed_users, removed_agents, removed_scores from old_rows o;
      else
        select array_agg(o.user_id), array_agg(o.source), array_agg(0::numeric) into removed_users, removed_agents, removed_scores from old_rows o;
    end case;
  end if;

  -- Rows of a user being deleted need no bookkeeping: their counters go with them.
  select array_agg(distinct u.id order by u.id) into touched_users
    from app_public.users u where u.id = any (added_users || removed_users);
  if touched_users is null then
    return null;
  end if;

  if cardinality(touched_users) = 1 then
    -- One user (every write through the API): the transaction adds to a slot
    -- nobody else holds, chosen at its first write, which alone moves the data
    -- version (the rest of the transaction commits with it). The setting
    -- remembers both; a rolled-back savepoint forgets them with its writes.
    remembered := current_setting('prompter.counter_slot', true);
    if split_part(remembered, ':', 1) = touched_users[1]::text then
      chosen_slot := split_part(remembered, ':', 2)::int;
    else
      chosen_slot := app_private.counter_slot(touched_users[1]);
      insert into app_hidden.data_versions as v (user_id, slot, version) values (touched_users[1], chosen_slot, 1)
      on conflict (user_id, slot) do update set version = v.version + 1;
      perform set_config('prompter.counter_slot', touched_users[1] || ':' || chosen_slot, true);
    end if;
  else
    -- A bulk statement over several users (the owner's maintenance): slot 0 of
    -- each, in key order.
    chosen_slot := 0;
    insert into app_hidden.data_versions as v (user_id, slot, version)
    select u, 0, 1 from unnest(touched_users) u
    on conflict (user_id, slot) do update set version = v.version + 1;
  end if;

  if counter is not null then
    insert into app_hidden.agent_stats as s (user_id, agent, slot, total, scored, wins, score_sum)
    select c.user_id, c.agent, chosen_slot,
           coalesce(sum(c.sign) filter (where counter = 'total'), 0),
           coalesce(sum(c.sign) filter (where counter = 'scored'), 0),
           coalesce(sum(c.sign) filter (where counter = 'wins'), 0),
           sum(c.sign * c.score)
      from (select a.user_id, a.agent, a.score, 1 as sign from unnest(added_users, added_agents, added_scores) a(user_id, agent, score)
            union all
            select r.user_id, r.agent, r.score, -1 from unnest(removed_users, removed_agents, removed_scores) r(user_id, agent, score)) c
     where c.user_id = any (touched_users)
     group by 1, 2
    having sum(c.sign) <> 0 or sum(c.sign * c.score) <> 0
     order by 1, 2
    on conflict (user_id, agent, slot) do update
      set total = s.total + excluded.total, scored = s.scored + excluded.scored,
          wins = s.wins + excluded.wins, score_sum = s.score_sum + excluded.score_sum;
  end if;
  return null;
end;
$$;
