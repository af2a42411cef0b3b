create or replace trigger _110_check_format before insert on app_public.exports
  for each row execute function app_private.tg_exports__check_format();

-- An export runs as the role that requested it, so that role runs these.
grant execute on function app_hidden.excel_safe(text) to app_user, app_reader;
grant execute on function app_hidden.export_time(timestamptz) to app_user, app_reader;
grant execute on function app_hidden.multi_agent_log_select(boolean, boolean, text) to app_user, app_reader;
grant execute on function app_hidden.multi_agent_log_query(boolean) to app_user, app_reader;
grant execute on function app_hidden.export_parts(text, boolean) to app_user, app_reader;
grant execute on function app_hidden.current_data_version() to app_user, app_reader;
