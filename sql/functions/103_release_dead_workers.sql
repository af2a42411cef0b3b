-- Releases the jobs of worker pools that have gone silent for `silence`
-- (killed, out of memory, host lost), so the other workers retry them now:
-- graphile-worker itself only gives up on a lock after four hours.
-- Also counts as dead: a pool holding a job locked longer than `silence` that
-- never sent a heartbeat (it died before its first one).
-- Returns the dead pools and what was done (app_private.release_workers); one
-- caller at a time (the others, finding the lock taken, return nothing).
create or replace function app_private.release_dead_workers(silence interval)
returns table (pool_id text, hostname text, pid int, last_seen timestamptz, released_jobs bigint[], failed_exports bigint[])
language plpgsql volatile
set search_path = pg_catalog
as $$
#variable_conflict use_column
declare
  dead text[];
begin
  -- A row lock only the owner can take (an advisory key anyone could hold).
  perform from app_private.process_locks l where l.name = 'release_dead_workers' for update skip locked;
  if not found then
    return;
  end if;
  select array_agg(distinct silent.pool_id) into dead from (
    select h.pool_id from app_private.worker_heartbeats h where h.last_seen <= now() - silence
    union
    select j.locked_by from graphile_worker._private_jobs j
     where j.locked_by is not null and j.locked_at <= now() - silence
       and not exists (select from app_private.worker_heartbeats h where h.pool_id = j.locked_by)
  ) silent;
  if dead is null then
    return;
  end if;
  return query select * from app_private.release_workers(dead);
end;
$$;
