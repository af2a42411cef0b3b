-- Stamps an export with the id of the HTTP request that queued it, which the
-- gateway sets as prompter.request_id in the request's transaction.
create or replace function app_private.tg_exports__request_id() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
  new.request_id := left(nullif(current_setting('prompter.request_id', true), ''), 64);
  return new;
end;
$$;
