-- The 95% Wilson interval of an agent's all-time win rate, for the
-- agent_effectiveness view (sql/rules/040). A view is planned on every read,
-- and an inlined wilson_interval there adds the parse of its body and a large
-- expression over the aggregates to each plan (planning 0.29 ms instead of
-- 0.13 ms; 1.7x the p50 of ten clients reading the view). PL/pgSQL keeps the
-- expression's plan for the session, so the view plans as it did before the
-- interval. The formula itself stays in wilson_interval (232), which the
-- windows' PL/pgSQL functions inline. No `set search_path`: that would cost a
-- setting's save and restore per row, and the body names nothing unqualified.
create or replace function app_hidden.win_rate_interval(wins bigint, total bigint) returns float8[]
language plpgsql immutable parallel safe
as $$
begin
  return app_hidden.wilson_interval(wins, total);
end;
$$;
