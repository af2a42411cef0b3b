-- Per agent: versions written (total), versions that are their prompt's best
-- head (wins), wins/total, and the mean judge total over scored versions.
-- security_invoker: RLS on agent_stats gives a user their own figures and an
-- admin everyone's. It sums the maintained per (user, agent) counter slots, never
-- the versions themselves. The win rate's 95% Wilson interval comes last (a
-- view may only gain columns at its end), from the windows' formula through
-- app_hidden.win_rate_interval, which keeps the view cheap to plan.
create or replace view app_public.agent_effectiveness with (security_invoker = true) as
select f.agent, f.wins, f.total, f.win_rate, f.avg_score, f.scored,
       f.bounds[1] as win_rate_lower, f.bounds[2] as win_rate_upper
  from (select a.name as agent,
               coalesce(sum(s.wins), 0)::bigint as wins,
               coalesce(sum(s.total), 0)::bigint as total,
               coalesce(sum(s.wins)::float8 / nullif(sum(s.total), 0), 0) as win_rate,
               coalesce((sum(s.score_sum) / nullif(sum(s.scored), 0))::float8, 0) as avg_score,
               coalesce(sum(s.scored), 0)::bigint as scored,
               app_hidden.win_rate_interval(coalesce(sum(s.wins), 0)::bigint, coalesce(sum(s.total), 0)::bigint) as bounds
          from app_public.agents a
          left join app_hidden.agent_stats s on s.agent = a.name
         group by a.name) f
 order by f.agent;
comment on view app_public.agent_effectiveness is E'@primaryKey agent\nWins, total, win rate (with its 95% Wilson interval) and average judge score per agent: your own figures, or everyone''s for an admin.';
grant select on app_public.agent_effectiveness to app_user, app_reader;
grant execute on function app_hidden.win_rate_interval(bigint, bigint) to app_user, app_reader;
