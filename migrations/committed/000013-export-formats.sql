--! Previous: sha1:6d2fd0d53d2c76c40e198dd8a3a5ebe89c47bdc5
--! Hash: sha1:6664c2eecb9ef63a69725a993168fe7d0d415e9e
--! Message: export formats

-- One-off exports take a format (csv, jsonl, parquet: the feeds' writers) and
-- filters (created_after, created_before, agents: the feeds' filters). Exports
-- requested before this are CSV of everything, as they were.
alter table app_public.exports add column if not exists format text not null default 'csv';
alter table app_public.exports add column if not exists filters jsonb not null default '{}';
grant insert (kind, options, format, filters) on app_public.exports to app_user, app_reader;

-- Their functions take the format and filters now (sql/functions/052, 072, 073);
-- the old signatures would make calls with fewer arguments ambiguous.
drop function if exists app_public.request_export(text, jsonb);
drop function if exists app_hidden.export_parts(text, boolean);
drop function if exists app_hidden.multi_agent_log_query(boolean);
