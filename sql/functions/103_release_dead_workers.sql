-- Releases the jobs of worker processes that have gone silent for `silence`
-- (killed, out of memory, host lost), so the other workers retry them now:
-- graphile-worker itself only gives up on a lock after four hours. A job that
-- was on its last attempt is not run again, so its export is failed here.
-- Also counts as dead: a pool holding a job locked longer than `silence` that
-- never sent a heartbeat (it died before its first one).
-- A worker wrongly presumed dead cannot finish an export twice: the export's
-- state changes only for the attempt that is running (app_private.export_*).
-- Returns the dead pools and what was done; one caller at a time (the others,
-- finding the lock taken, return nothing).
create or replace function app_private.release_dead_workers(silence interval)
returns table (pool_id text, hostname text, pid int, last_seen timestamptz, released_jobs bigint[], failed_exports bigint[])
language plpgsql volatile
set search_path = pg_catalog
as $$
#variable_conflict use_column
declare
  dead text[];
  failed_id bigint;
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

  return query
    select d.pool_id, h.hostname, h.pid, h.last_seen,
           array(select j.id from graphile_worker._private_jobs j where j.locked_by = d.pool_id order by j.id),
           array(select (j.payload ->> 'exportId')::bigint
                   from graphile_worker._private_jobs j
                   join graphile_worker._private_tasks t on t.id = j.task_id
                  where j.locked_by = d.pool_id and t.identifier = 'export' and j.attempts >= j.max_attempts
                  order by 1)
      from unnest(dead) d (pool_id)
      left join app_private.worker_heartbeats h on h.pool_id = d.pool_id;

  for failed_id in
    update app_public.exports e
       set status = 'failed', finished_at = clock_timestamp(), attempts = j.attempts,
           error_message = format('The export failed %s times (its worker stopped during the last attempt); try again later, or ask your operator about export %s.', j.attempts, e.id)
      from graphile_worker._private_jobs j
      join graphile_worker._private_tasks t on t.id = j.task_id
     where j.locked_by = any (dead) and t.identifier = 'export' and j.attempts >= j.max_attempts
       and e.id = (j.payload ->> 'exportId')::bigint and e.status in ('queued', 'running')
    returning e.id
  loop
    perform pg_notify('prompter_exports', failed_id::text);
  end loop;

  perform graphile_worker.force_unlock_workers(dead);
  delete from app_private.worker_heartbeats h where h.pool_id = any (dead);
end;
$$;
