-- Queues the job in the transaction that inserts the export, so an export is
-- never lost (no row without a job) nor queued twice (one job per row).
create or replace function app_private.tg_exports__enqueue() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  perform graphile_worker.add_job('export', json_build_object('exportId', new.id), max_attempts => 5);
  return null;
end;
$$;
