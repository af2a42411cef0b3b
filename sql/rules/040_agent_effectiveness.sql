-- Per agent: versions written (total), versions that are their prompt's best
-- head (wins), wins/total, and the mean judge total over scored versions.
-- security_invoker: RLS on agent_stats gives a user their own figures and an
-- admin everyone's. It sums the maintained per (user, agent) counter slots, never
-- the versions themselves.
create or replace view app_public.agent_effectiveness with (security_invoker = true) as
select a.name as agent,
       coalesce(sum(s.wins), 0)::bigint as wins,
       coalesce(sum(s.total), 0)::bigint as total,
       coalesce(sum(s.wins)::float8 / nullif(sum(s.total), 0), 0) as win_rate,
       coalesce((sum(s.score_sum) / nullif(sum(s.scored), 0))::float8, 0) as avg_score,
       coalesce(sum(s.scored), 0)::bigint as scored
  from app_public.agents a
  left join app_hidden.agent_stats s on s.agent = a.name
 group by a.name
 order by a.name;
comment on view app_public.agent_effectiveness is E'@primaryKey agent\nWins, total, win rate and average judge score per agent: your own figures, or everyone''s for an admin.';
grant select on app_public.agent_effectiveness to app_user, app_reader;
