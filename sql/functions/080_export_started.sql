-- The worker starts (or retries) an export. Returns the export, or null when
-- there is nothing to do: the row is gone (deleted with its user, or expired)
-- or it has finished already (the job ran twice).
create or replace function app_private.export_started(export_id bigint, attempt int) returns app_public.exports
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  started app_public.exports;
begin
  update app_public.exports
     set status = 'running', attempts = attempt, started_at = clock_timestamp(), progress_rows = 0
   where id = export_id and status in ('queued', 'running')
  returning * into started;
  if found then
    perform pg_notify('prompter_exports', export_id::text);
  end if;
  return started;
end;
$$;
