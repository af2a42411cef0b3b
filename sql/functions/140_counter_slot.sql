-- Which of a user's counter slots (app_hidden.agent_stats, app_hidden.data_versions)
-- this transaction adds to. Each slot is guarded by a transaction-level advisory
-- lock: the transaction takes the first free one, starting from a slot of its
-- own backend (so it keeps the slot it took earlier). Whoever adds to a slot
-- holds its lock, so concurrent writers of one user never wait for each other's
-- counter rows. When all 32 are taken it never waits for an advisory lock, which
-- any role can take (a SQL login holding a user's 32 keys must not stall that
-- user's writes): it shares its backend's slot and waits, at worst, for the row
-- locks of real writers, which only the owner's triggers take. Lock keys that
-- collide (ids beyond 2^26) only make a writer skip a slot.
create or replace function app_private.counter_slot(user_id bigint) returns smallint
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  slots constant int := 32;
  namespace constant int := 1347571276; -- 'PRCL': counter slot locks, apart from every other advisory lock
  first_slot constant int := pg_backend_pid() % slots;
  lock_key int := ((counter_slot.user_id % 67108864) * slots)::int;
  slot int;
begin
  for step in 0 .. slots - 1 loop
    slot := (first_slot + step) % slots;
    if pg_try_advisory_xact_lock(namespace, lock_key + slot) then
      return slot;
    end if;
  end loop;
  return first_slot;
end;
$$;
comment on function app_private.counter_slot(bigint) is
  'The counter slot of this user that the current transaction may add to without waiting for other writers.';
