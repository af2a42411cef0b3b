-- multi_agent_log for feeds: the export's rows (sql/functions/072) for the
-- prompts whose row may have changed after the snapshot `since` (null: every
-- prompt). A row shows the prompt's own columns and its row of
-- app_hidden.multi_agent_log_rows, which the writing transactions keep exact
-- and stamp when its figures change (a version, score or best head written or
-- deleted), so the changed rows are two lookups in written_in indexes: the
-- changed prompts and the changed log rows. A run reads what changed and
-- nothing else; changes that leave a row as it was do not send it again.
create or replace function app_hidden.feed_multi_agent_log_query(typed boolean, excel boolean, since pg_snapshot, prompt_match text)
returns text
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  changed constant text := case when since is null then null else
    format('(c.written_in >= %s or c.written_in = any (%L::bigint[]))',
           pg_snapshot_xmax(since)::text, array(select x::text::bigint from pg_snapshot_xip(since) x)::text) end;
begin
  if since is null then
    return app_hidden.multi_agent_log_query(excel, typed, prompt_match);
  end if;
  return app_hidden.multi_agent_log_query(excel, typed, format($changes$%1$s
   and p.id in (select c.id from app_public.prompts c where %2$s
                union select c.prompt_id from app_hidden.multi_agent_log_rows c where %2$s)$changes$,
    prompt_match, changed));
end;
$$;
comment on function app_hidden.feed_multi_agent_log_query(boolean, boolean, pg_snapshot, text) is
  'The SELECT a feed run of multi_agent_log reads: the prompts changed after the snapshot since (all when null).';
