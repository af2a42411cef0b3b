-- Retention: deletes finished exports requested more than `retention_days` ago
-- and returns where their files are, for the worker to delete them. Queued and
-- running exports stay, whatever their age: their job still refers to them.
create or replace function app_private.delete_expired_exports(retention_days int) returns table (file_name text, object_key text)
language sql volatile
set search_path = pg_catalog
as $$
  delete from app_public.exports
   where requested_at < now() - make_interval(days => retention_days)
     and status in ('succeeded', 'failed')
  returning exports.file_name, exports.object_key;
$$;
