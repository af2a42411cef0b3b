-- A worker process is alive: called on start and every WORKER_HEARTBEAT_INTERVAL.
create or replace function app_private.worker_heartbeat(pool_id text, hostname text, pid int) returns void
language sql volatile
set search_path = pg_catalog
as $$
  insert into app_private.worker_heartbeats as h (pool_id, hostname, pid)
  values (worker_heartbeat.pool_id, worker_heartbeat.hostname, worker_heartbeat.pid)
  on conflict on constraint worker_heartbeats_pkey do update set last_seen = now();
$$;
