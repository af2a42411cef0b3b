-- Every timestamp in an export, in one format: ISO 8601 in UTC with
-- microseconds, whatever the session's TimeZone and DateStyle, so exporting
-- the same data twice gives the same bytes.
-- Stable, not immutable (to_char is stable), so the planner inlines it.
create or replace function app_hidden.export_time(t timestamptz) returns text
language sql stable parallel safe
as $$
  select pg_catalog.to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
$$;
comment on function app_hidden.export_time(timestamptz) is
  'The timestamp as exports write it: ISO 8601, UTC, e.g. 2025-01-31T09:15:00.000000Z.';
