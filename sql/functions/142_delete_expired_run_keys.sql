-- Retention of recordRun's idempotency keys: a run recorded more than
-- `retention_days` ago is forgotten, so its key, sent again, records a new run.
-- The runs' rows stay; only the record of the key goes. Returns how many keys.
create or replace function app_private.delete_expired_run_keys(retention_days int) returns bigint
language sql volatile
set search_path = pg_catalog
as $$
  with forgotten as (
    delete from app_hidden.recorded_runs r
     where r.created_at < now() - make_interval(days => retention_days)
    returning 1
  )
  select count(*) from forgotten;
$$;
