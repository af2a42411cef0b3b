create or replace trigger _110_check_format before insert on app_public.exports
  for each row execute function app_private.tg_exports__check_format();

-- An export runs as the role that requested it, so that role runs these.
grant execute on function app_hidden.excel_safe(text) to app_user, app_reader;
grant execute on function app_hidden.export_time(timestamptz) to app_user, app_reader;
grant execute on function app_hidden.multi_agent_log_query(boolean, boolean, text) to app_user, app_reader;
grant execute on function app_hidden.export_parts(text, boolean, boolean, jsonb) to app_user, app_reader;
grant execute on function app_hidden.where_clause(text[]) to app_user, app_reader;
grant execute on function app_hidden.filter_matches(jsonb) to app_user, app_reader;
-- The checks of a request (feed or export) run as its requester.
grant execute on function app_hidden.checked_format_options(text, text, jsonb) to app_user, app_reader;
grant execute on function app_hidden.current_data_version() to app_user, app_reader;
