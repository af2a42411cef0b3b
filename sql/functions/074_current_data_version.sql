-- The version of the data this session can read: the sum of its user's counter
-- slots, or of everyone's for an admin (RLS decides which rows it sums). An export
-- records it from its snapshot; app_public.exports_stale compares it later.
create or replace function app_hidden.current_data_version() returns bigint
language sql stable
set search_path = pg_catalog
as $$
  select coalesce(sum(version), 0)::bigint from app_hidden.data_versions;
$$;
comment on function app_hidden.current_data_version() is
  'A number that changes whenever the data this session can read changes.';
