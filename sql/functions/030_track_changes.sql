-- The statement-level triggers of every table that holds a user's data. They
-- keep two things in the same transaction as the write:
--   * app_hidden.data_versions: a counter per user, so exports can tell whether
--     the data they saw has changed since;
--   * app_hidden.agent_stats: per (user, agent) counts behind agent_effectiveness
--     (versions -> total, judge scores -> scored and score_sum, best heads -> wins).
-- Both are striped over slots that readers sum (see app_private.counter_slot), so
-- concurrent writers of one user add to different rows instead of queueing on one.
-- Transition tables make bulk writes cost one aggregate, not one update per row.
-- The queries are static (PL/pgSQL keeps their plans for the session), so a
-- one-row write does not plan SQL each time.
--
-- Inserts, nearly every write, have a function per table (the prompts' here,
-- the others' in sql/functions/236_bookkeeping_inserts.sql, with the per-day
-- figures and multi_agent_log rows) that evaluates no PL/pgSQL expression of
-- its own: the first time a transaction evaluates one, it costs about as much
-- as a small query. The slot of each user is worked out inside the statement
-- (app_private.transaction_counter_slot). The users of inserted rows exist: the
-- foreign keys, checked before these triggers, say so.
-- Judge scores and best heads count in rows of their own, 32 and 64 slots up
-- (still guarded by the transaction's slot lock), so that a transaction writing
-- a version, its score and the best head (recordRun) changes each counter row
-- once: a row the transaction has already changed costs a foreign key check
-- (users, agents) on every later update of it.
create or replace function app_private.tg__track_prompt_inserts() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  perform app_private.transaction_counter_slot(u.user_id) from (select distinct n.user_id from new_rows n) u;
  return null;
end;
$$;

-- Updates and deletes of any of the tables: what the old rows counted comes
-- off, what the new ones count goes on.
create or replace function app_private.tg__track_changes() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
declare
  added_users bigint[];
  added_agents text[];
  added_scores numeric[];
  removed_users bigint[];
  removed_agents text[];
  removed_scores numeric[];
  touched_users bigint[];
begin
  -- Each branch names only columns its table has: PL/pgSQL parses a statement
  -- when it first runs it, for the table whose trigger runs it.
  if tg_op = 'UPDATE' then
    case tg_table_name
      when 'prompts' then
        select array_agg(n.user_id), array_agg(null::text), array_agg(0::numeric) into added_users, added_agents, added_scores from new_rows n;
      when 'judge_scores' then
        select array_agg(n.user_id), array_agg(n.source), array_agg(n.total) into added_users, added_agents, added_scores from new_rows n;
      else
        select array_agg(n.user_id), array_agg(n.source), array_agg(0::numeric) into added_users, added_agents, added_scores from new_rows n;
    end case;
  end if;
  case tg_table_name
    when 'prompts' then
      select array_agg(o.user_id), array_agg(null::text), array_agg(0::numeric) into removed_users, removed_agents, removed_scores from old_rows o;
    when 'judge_scores' then
      select array_agg(o.user_id), array_agg(o.source), array_agg(o.total) into removed_users, removed_agents, removed_scores from old_rows o;
    else
      select array_agg(o.user_id), array_agg(o.source), array_agg(0::numeric) into removed_users, removed_agents, removed_scores from old_rows o;
  end case;

  -- Rows of a user being deleted need no bookkeeping: their counters go with them.
  select array_agg(distinct u.id order by u.id) into touched_users
    from app_public.users u where u.id = any (added_users || removed_users);
  if touched_users is null then
    return null;
  end if;
  -- Every touched user's data version moves, even when no count does (an edited text).
  perform app_private.transaction_counter_slot(u) from unnest(touched_users) u;

  if tg_table_name <> 'prompts' then
    insert into app_hidden.agent_stats as s (user_id, agent, slot, total, scored, wins, score_sum)
    select c.user_id, c.agent, app_private.transaction_counter_slot(c.user_id),
           coalesce(sum(c.sign) filter (where tg_table_name = 'prompt_versions'), 0),
           coalesce(sum(c.sign) filter (where tg_table_name = 'judge_scores'), 0),
           coalesce(sum(c.sign) filter (where tg_table_name = 'best_heads'), 0),
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
