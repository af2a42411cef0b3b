revoke execute on function app_public.exports_downloadable(app_public.exports) from public;
grant execute on function app_public.exports_downloadable(app_public.exports) to app_user, app_reader;
