-- Rows written so far by a running export, reported every second or so.
-- Only the attempt that is running may report.
create or replace function app_private.export_progress(export_id bigint, attempt int, rows_written bigint) returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
begin
  update app_public.exports
     set progress_rows = rows_written
   where id = export_id and status = 'running' and attempts = attempt and progress_rows <> rows_written;
  if found then
    perform pg_notify(app_private.exports_channel(), export_id::text);
  end if;
end;
$$;
