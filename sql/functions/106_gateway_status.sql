-- What the gateway reads as itself, not as a caller: /readyz and the
-- deployment-wide gauges of /metrics. Counts only, never a row of anyone's
-- data. Executable by the authenticator (granted in
-- app_private.ensure_authenticator) and the owner; nobody else.

create or replace function app_hidden.gateway_applied_migrations() returns int
language sql stable security definer
set search_path = pg_catalog
as $$
  select count(*)::int from graphile_migrate.migrations;
$$;

-- Pool ids of the workers heard from within `silence`.
create or replace function app_hidden.gateway_live_workers(silence interval) returns setof text
language sql stable security definer
set search_path = pg_catalog
as $$
  select w.pool_id from app_private.live_workers(silence) w order by 1;
$$;

-- Every kind in every status, with zeros: a series exists before its first export.
create or replace function app_hidden.gateway_export_counts()
returns table (kind text, status text, count int)
language sql stable security definer
set search_path = pg_catalog
as $$
  select k.name, s.status, count(e.id)::int
    from app_public.export_kinds k
   cross join unnest(array['queued', 'running', 'succeeded', 'failed']) s(status)
    left join app_public.exports e on e.kind = k.name and e.status = s.status
   group by 1, 2
   order by 1, 2;
$$;

-- graphile-worker's own tables (stable within 0.18): a job is ready when it
-- may run now and no worker holds it. Every known task is listed, with zeros.
create or replace function app_hidden.gateway_job_queue()
returns table (task text, ready int, scheduled int, running int, failed int, oldest_ready_seconds float8)
language sql stable security definer
set search_path = pg_catalog
as $$
  select t.identifier,
         count(j.id) filter (where j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now())::int,
         count(j.id) filter (where j.locked_at is null and j.attempts < j.max_attempts and j.run_at > now())::int,
         count(j.id) filter (where j.locked_at is not null)::int,
         count(j.id) filter (where j.locked_at is null and j.attempts >= j.max_attempts)::int,
         coalesce(extract(epoch from now() - min(j.run_at) filter (
           where j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now())), 0)::float8
    from graphile_worker._private_tasks t
    left join graphile_worker._private_jobs j on j.task_id = t.id
   group by t.identifier
   order by t.identifier;
$$;

revoke execute on function app_hidden.gateway_applied_migrations(), app_hidden.gateway_live_workers(interval),
  app_hidden.gateway_export_counts(), app_hidden.gateway_job_queue() from public;
