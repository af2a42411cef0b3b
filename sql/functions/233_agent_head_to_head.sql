-- Matches per pair of agents over the days [from, to), once per pair (agent <
-- opponent, from the agent's side): the all-users rows for an admin, the
-- caller's own rows for anyone else. Pairs that never met are left out.
create or replace function app_hidden.agent_pairs("from" date, "to" date)
returns table (agent text, opponent text, wins bigint, losses bigint, ties bigint)
language plpgsql stable
set search_path = pg_catalog
set jit = off
as $$
#variable_conflict use_column
begin
  return query
  select p.agent, p.opponent, sum(p.wins)::bigint, sum(p.losses)::bigint, sum(p.ties)::bigint
    from (select t.agent, t.opponent, t.wins, t.losses, t.ties
            from app_hidden.agent_pair_day_totals t
           where app_public.current_user_is_admin() and t.day >= "from" and t.day < "to"
          union all
          select s.agent, s.opponent, s.wins, s.losses, s.ties
            from app_hidden.agent_pair_day_stats s
           where not app_public.current_user_is_admin() and s.user_id = app_public.current_user_id()
             and s.day >= "from" and s.day < "to") p
   where p.agent in (select a.name from app_public.agents a) and p.opponent in (select a.name from app_public.agents a)
   group by 1, 2
  having sum(p.wins) + sum(p.losses) + sum(p.ties) > 0;
end;
$$;

create or replace function app_public.agent_head_to_head("from" date, "to" date)
returns table (agent text, opponent text, wins bigint, losses bigint, ties bigint)
language plpgsql stable
set search_path = pg_catalog
set jit = off
as $$
begin
  perform app_hidden.check_day_range("from", "to");
  return query
    select p.agent, p.opponent, p.wins, p.losses, p.ties from app_hidden.agent_pairs("from", "to") p
    union all
    select p.opponent, p.agent, p.losses, p.wins, p.ties from app_hidden.agent_pairs("from", "to") p
    order by 1, 2;
end;
$$;
comment on function app_public.agent_head_to_head("from" date, "to" date) is
  'For each ordered pair of agents that met in the range (prompts created, UTC, from the day `from` up to, not including, `to`): the agent''s wins, losses and ties against the opponent, one match per two scored versions of one prompt by the two agents, decided by total score: your own, or everyone''s for an admin.';
