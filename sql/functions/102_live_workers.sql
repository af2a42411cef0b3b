-- The worker processes heard from within `silence` (for /readyz and /metrics).
create or replace function app_private.live_workers(silence interval) returns setof app_private.worker_heartbeats
language sql stable
set search_path = pg_catalog
as $$
  select * from app_private.worker_heartbeats h where h.last_seen > now() - silence;
$$;
