grant execute on function app_public.current_user_id() to app_anonymous, app_user, app_reader;
-- current_user_id() calls it with the caller's rights (for sessions that may be a reader login).
grant execute on function app_public.current_login_user_id() to app_anonymous, app_user, app_reader;
grant execute on function app_public.current_user_is_admin() to app_anonymous, app_user, app_reader;
grant execute on function app_public.register(text, text) to app_anonymous, app_user;
grant execute on function app_public.authenticate(text, text) to app_anonymous, app_user;
grant execute on function app_public.set_best_head(bigint) to app_user;
grant execute on function app_public.request_export(text, jsonb, text, jsonb) to app_user, app_reader;
grant execute on function app_public.exports_stale(app_public.exports) to app_user, app_reader;
