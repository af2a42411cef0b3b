-- Serialises one user's export requests, so concurrent ones cannot all slip
-- under the rate limit (see tg_exports__prepare). A row lock in a table only
-- the owner may write, taken here as definer: unlike an advisory lock, no API
-- caller or SQL login can take it by hand and hold another user's exports up.
-- Only the caller's own row is locked: a SQL login that queues an export of
-- its user holds at most that user's requests, and only within its limits.
create or replace function app_hidden.lock_export_rate(user_id bigint) returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if lock_export_rate.user_id is distinct from app_public.current_user_id() then
    return;
  end if;
  insert into app_private.export_rate_locks as l (user_id) values (lock_export_rate.user_id)
  on conflict on constraint export_rate_locks_pkey do update set user_id = l.user_id;
end;
$$;
