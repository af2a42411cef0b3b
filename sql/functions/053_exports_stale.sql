-- Whether the data an export saw has changed since: compares the data version
-- recorded in the export's snapshot with the current one, for the owner's data
-- or, for an export made by an admin, everyone's. Runs as the caller, not as
-- definer: the row is an argument anyone can forge, so RLS on data_versions
-- must decide whose counters it may compare with. A user's counter is the sum of
-- their slots (see app_private.counter_slot): every change adds to one of them.
create or replace function app_public.exports_stale(e app_public.exports) returns boolean
language sql stable
set search_path = pg_catalog
as $$
  select case
    when e.data_version is null then null
    when e.is_global then e.data_version <> (select coalesce(sum(version), 0) from app_hidden.data_versions)
    else e.data_version <> (select coalesce(sum(version), 0) from app_hidden.data_versions where user_id = e.user_id)
  end;
$$;
comment on function app_public.exports_stale(app_public.exports) is
  'True when the data has changed since the export read it; null until it has run.';
