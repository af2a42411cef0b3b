-- The analytics' windows are UTC days: `from` is the first day counted, `to`
-- the first day not counted, so consecutive windows neither overlap nor leave
-- gaps, and a window of one day is (d, d + 1).
create or replace function app_hidden.check_day_range("from" date, "to" date) returns void
language plpgsql immutable
set search_path = pg_catalog
as $$
begin
  if "from" is null or "to" is null then
    raise exception 'Give both days of the range: from (the first day counted) and to (the first day not counted).'
      using errcode = 'PARNG';
  end if;
  if "from" > "to" then
    raise exception 'The range starts (%) after it ends (%): from is the first day counted, to the first day not counted.', "from", "to"
      using errcode = 'PARNG';
  end if;
end;
$$;

-- The 95% Wilson score interval of a proportion (z = 1.959963984540054, so
-- z^2 = 3.841458820694124); with no trials, [0, 1]. One expression, so the
-- planner inlines it: a call per row of a series would cost more than the series.
create or replace function app_hidden.wilson_interval(successes bigint, trials bigint) returns float8[]
language sql immutable parallel safe
as $$
  select case when trials operator(pg_catalog.<=) 0 then array[0, 1]::float8[]
         else array[
           greatest(0, (successes::float8 / trials + 3.841458820694124 / (2 * trials)
                        - 1.959963984540054 * pg_catalog.sqrt((successes::float8 / trials) * (1 - successes::float8 / trials) / trials
                                                              + 3.841458820694124 / (4 * trials::float8 * trials)))
                       / (1 + 3.841458820694124 / trials)),
           least(1, (successes::float8 / trials + 3.841458820694124 / (2 * trials)
                     + 1.959963984540054 * pg_catalog.sqrt((successes::float8 / trials) * (1 - successes::float8 / trials) / trials
                                                           + 3.841458820694124 / (4 * trials::float8 * trials)))
                    / (1 + 3.841458820694124 / trials))]
         end
$$;

-- PL/pgSQL, so a session plans the query once (a SQL function with settings
-- is planned on every call). JIT off: the generic plans of these small reads estimate many rows (a
-- bucket per day of any range), which would make PostgreSQL compile them, at a
-- cost of seconds. Every figure per agent and bucket ('day', 'week' from Monday, or 'all': one
-- bucket starting at `from`) of the days in [from, to): the all-users rows for
-- an admin, the caller's own rows for anyone else. It reads the day rows, never
-- the versions: its cost follows the days and agents asked for, not the rows.
create or replace function app_hidden.agent_figures(bucket text, "from" date, "to" date)
returns table (bucket_start date, agent text, wins bigint, total bigint, win_rate float8, win_rate_lower float8,
               win_rate_upper float8, avg_score float8, scored bigint, avg_clarity float8, avg_specificity float8,
               avg_actionability float8, avg_structure float8, avg_context_use float8)
language plpgsql stable
set search_path = pg_catalog
set jit = off
as $$
#variable_conflict use_column
begin
  return query
  with days as (
    select t.day, t.agent, t.versions, t.wins, t.scored, t.score_sum, t.clarity_sum, t.specificity_sum,
           t.actionability_sum, t.structure_sum, t.context_use_sum
      from app_hidden.agent_day_totals t
     where app_public.current_user_is_admin() and t.day >= "from" and t.day < "to"
    union all
    select s.day, s.agent, s.versions, s.wins, s.scored, s.score_sum, s.clarity_sum, s.specificity_sum,
           s.actionability_sum, s.structure_sum, s.context_use_sum
      from app_hidden.agent_day_stats s
     where not app_public.current_user_is_admin() and s.user_id = app_public.current_user_id()
       and s.day >= "from" and s.day < "to"
  ), sums as (
    select case bucket when 'day' then d.day when 'week' then date_trunc('week', d.day)::date else "from" end as bucket_start,
           d.agent, sum(d.versions) as versions, sum(d.wins) as wins, sum(d.scored) as scored, sum(d.score_sum) as score_sum,
           sum(d.clarity_sum) as clarity_sum, sum(d.specificity_sum) as specificity_sum,
           sum(d.actionability_sum) as actionability_sum, sum(d.structure_sum) as structure_sum,
           sum(d.context_use_sum) as context_use_sum
      from days d group by 1, 2
  ), buckets as (
    select "from" as bucket_start where bucket = 'all'
    union all
    select b::date from generate_series(case bucket when 'week' then date_trunc('week', "from") else "from" end,
                                        "to" - 1, case bucket when 'week' then interval '1 week' else interval '1 day' end) b
     where bucket in ('day', 'week')
  )
  select b.bucket_start, a.name, coalesce(s.wins, 0)::bigint, coalesce(s.versions, 0)::bigint,
         coalesce(s.wins::float8 / nullif(s.versions, 0), 0),
         interval_bounds[1], interval_bounds[2],
         coalesce((s.score_sum / nullif(s.scored, 0))::float8, 0), coalesce(s.scored, 0)::bigint,
         coalesce((s.clarity_sum / nullif(s.scored, 0))::float8, 0), coalesce((s.specificity_sum / nullif(s.scored, 0))::float8, 0),
         coalesce((s.actionability_sum / nullif(s.scored, 0))::float8, 0), coalesce((s.structure_sum / nullif(s.scored, 0))::float8, 0),
         coalesce((s.context_use_sum / nullif(s.scored, 0))::float8, 0)
    from buckets b
   cross join app_public.agents a
    left join sums s on s.bucket_start = b.bucket_start and s.agent = a.name
   cross join lateral (select app_hidden.wilson_interval(coalesce(s.wins, 0)::bigint, coalesce(s.versions, 0)::bigint) as interval_bounds) w
   order by 1, 2;
end;
$$;

create or replace function app_public.agent_effectiveness_between("from" date, "to" date)
returns table (agent text, wins bigint, total bigint, win_rate float8, win_rate_lower float8, win_rate_upper float8,
               avg_score float8, scored bigint, avg_clarity float8, avg_specificity float8, avg_actionability float8,
               avg_structure float8, avg_context_use float8)
language plpgsql stable
set search_path = pg_catalog
set jit = off
as $$
begin
  perform app_hidden.check_day_range("from", "to");
  return query
    select f.agent, f.wins, f.total, f.win_rate, f.win_rate_lower, f.win_rate_upper, f.avg_score, f.scored, f.avg_clarity,
           f.avg_specificity, f.avg_actionability, f.avg_structure, f.avg_context_use
      from app_hidden.agent_figures('all', "from", "to") f;
end;
$$;
comment on function app_public.agent_effectiveness_between(date, date) is
  'agent_effectiveness''s figures for the versions created (UTC) from the day `from` up to, not including, the day `to`, with the win rate''s 95% Wilson interval and the five criteria''s averages: your own, or everyone''s for an admin.';

create or replace function app_public.agent_effectiveness_series(bucket text, "from" date, "to" date)
returns table (bucket_start date, agent text, wins bigint, total bigint, win_rate float8, win_rate_lower float8,
               win_rate_upper float8, avg_score float8, scored bigint, avg_clarity float8, avg_specificity float8,
               avg_actionability float8, avg_structure float8, avg_context_use float8)
language plpgsql stable
set search_path = pg_catalog
set jit = off
as $$
begin
  if bucket is null or bucket not in ('day', 'week') then
    raise exception 'Unknown bucket %: a series has a bucket of day or week.', coalesce(quote_literal(bucket), 'null')
      using errcode = 'PABKT';
  end if;
  perform app_hidden.check_day_range("from", "to");
  if "to" - "from" > 366 then
    raise exception 'A series covers at most 366 days; % to % is % days.', "from", "to", "to" - "from"
      using errcode = 'PASPN';
  end if;
  return query select * from app_hidden.agent_figures(bucket, "from", "to");
end;
$$;
comment on function app_public.agent_effectiveness_series(text, date, date) is
  'agent_effectiveness_between''s figures per agent for each day, or each week (from Monday), of the range `from` (counted) to `to` (not counted), at most 366 days; a week cut by the range counts only its days in it.';
