-- A worker process has stopped cleanly: its jobs are finished or released already.
create or replace function app_private.worker_stopped(pool_id text) returns void
language sql volatile
set search_path = pg_catalog
as $$
  delete from app_private.worker_heartbeats h where h.pool_id = worker_stopped.pool_id;
$$;
