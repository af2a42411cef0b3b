-- Records a failed attempt. The export waits for its retry ("queued", with the
-- error shown), or after the last attempt is "failed" for good.
create or replace function app_private.export_failed(export_id bigint, attempt int, error_message text, final boolean)
returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
begin
  update app_public.exports e
     set status = case when final then 'failed' else 'queued' end,
         finished_at = case when final then clock_timestamp() end,
         error_message = export_failed.error_message
   where e.id = export_id and e.status = 'running' and e.attempts = attempt;
  if found then
    perform pg_notify(app_private.exports_channel(), export_id::text);
  end if;
end;
$$;
