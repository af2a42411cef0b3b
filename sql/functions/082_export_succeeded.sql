-- Records a finished export. Only the attempt that is running may finish it:
-- a worker that was presumed dead and came back (its job was unlocked and run
-- again) gets false and must delete its file, so an export succeeds once.
-- object_key: the file's key in S3, or null for a file in EXPORT_DIR.
create or replace function app_private.export_succeeded(
  export_id bigint, attempt int, file_name text, object_key text, rows bigint, bytes bigint, sha256 text, data_version bigint
) returns boolean
language plpgsql volatile
set search_path = pg_catalog
as $$
begin
  update app_public.exports e
     set status = 'succeeded', finished_at = clock_timestamp(), file_name = export_succeeded.file_name,
         object_key = export_succeeded.object_key,
         rows = export_succeeded.rows, bytes = export_succeeded.bytes, sha256 = export_succeeded.sha256,
         data_version = export_succeeded.data_version, progress_rows = export_succeeded.rows, error_message = null
   where e.id = export_id and e.status = 'running' and e.attempts = attempt;
  if not found then
    return false;
  end if;
  perform pg_notify(app_private.exports_channel(), export_id::text);
  return true;
end;
$$;
