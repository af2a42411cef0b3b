-- Releases the jobs held by graphile-worker pools that have stopped: a worker
-- process that died, or a runner that stopped inside a live process (its
-- database connection failed) and was replaced by a new pool. Their jobs run
-- again now; a job that was on its last attempt is not run again, so its
-- export is failed here. Returns each pool and what was done.
-- A pool wrongly presumed stopped cannot finish an export twice: the export's
-- state changes only for the attempt that is running (app_private.export_*).
create or replace function app_private.release_workers(pool_ids text[])
returns table (pool_id text, hostname text, pid int, last_seen timestamptz, released_jobs bigint[], failed_exports bigint[])
language plpgsql volatile
set search_path = pg_catalog
as $$
#variable_conflict use_column
declare
  failed_id bigint;
begin
  -- One release at a time, so an export is reported failed once: a row lock
  -- only the owner can take (an advisory key anyone could hold).
  perform from app_private.process_locks l where l.name = 'release_dead_workers' for update;
  return query
    select d.pool_id, h.hostname, h.pid, h.last_seen,
           array(select j.id from graphile_worker._private_jobs j where j.locked_by = d.pool_id order by j.id),
           array(select (j.payload ->> 'exportId')::bigint
                   from graphile_worker._private_jobs j
                   join graphile_worker._private_tasks t on t.id = j.task_id
                  where j.locked_by = d.pool_id and t.identifier = 'export' and j.attempts >= j.max_attempts
                    and exists (select from app_public.exports e
                                 where e.id = (j.payload ->> 'exportId')::bigint and e.status in ('queued', 'running'))
                  order by 1)
      from unnest(pool_ids) d (pool_id)
      left join app_private.worker_heartbeats h on h.pool_id = d.pool_id;

  for failed_id in
    update app_public.exports e
       set status = 'failed', finished_at = clock_timestamp(), attempts = j.attempts,
           error_message = format('The export failed %s times (its worker stopped during the last attempt); try again later, or ask your operator about export %s.', j.attempts, e.id)
      from graphile_worker._private_jobs j
      join graphile_worker._private_tasks t on t.id = j.task_id
     where j.locked_by = any (pool_ids) and t.identifier = 'export' and j.attempts >= j.max_attempts
       and e.id = (j.payload ->> 'exportId')::bigint and e.status in ('queued', 'running')
    returning e.id
  loop
    perform pg_notify(app_private.exports_channel(), failed_id::text);
  end loop;

  perform graphile_worker.force_unlock_workers(pool_ids);
  delete from app_private.worker_heartbeats h where h.pool_id = any (pool_ids);
end;
$$;
