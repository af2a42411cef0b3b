-- Whether the caller may download the export's file now: an export of
-- everyone's data only while the caller is an admin (or an admin's SQL
-- login), so a demoted admin's earlier exports of everyone's rows are no
-- longer theirs to download; their own exports, of their own rows, still are.
-- The gateway refuses the download otherwise (EXPORT_NOT_DOWNLOADABLE).
create or replace function app_public.exports_downloadable(e app_public.exports) returns boolean
language sql stable
set search_path = pg_catalog
as $$
  select not e.is_global or app_public.current_user_is_admin();
$$;
comment on function app_public.exports_downloadable(app_public.exports) is
  'True when you may download the export''s file now: an export of everyone''s data only while you are an admin.';
