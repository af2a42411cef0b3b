-- Operations: tracing an export back to the request that queued it.
create or replace trigger _105_request_id before insert on app_public.exports
  for each row execute function app_private.tg_exports__request_id();
comment on column app_public.exports.request_id is
  'The X-Request-Id of the HTTP request that queued the export (empty for SQL and the CLI); it is in the gateway''s and the worker''s logs.';
