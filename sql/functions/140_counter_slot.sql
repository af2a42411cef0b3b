-- The counter slot (of app_hidden.agent_stats, app_hidden.data_versions) that
-- this transaction adds to for a user: taken at the transaction's first write
-- for that user, which alone moves the user's data version (the rest of the
-- transaction commits with it). The prompter.counter_slot setting remembers the
-- user and the slot for the transaction's later writes; a rolled-back savepoint
-- forgets them with its writes.
-- Each slot is guarded by a transaction-level advisory lock: the transaction
-- takes the first free one, starting from a slot of its own backend (so it keeps
-- the slot it took earlier). Whoever adds to a slot holds its lock, so concurrent
-- writers of one user never wait for each other's counter rows. When all 32 are
-- taken it never waits for an advisory lock, which any role can take (a SQL login
-- holding a user's 32 keys must not stall that user's writes): it shares its
-- backend's slot and waits, at worst, for the row locks of real writers, which
-- only the owner's triggers take. Lock keys that collide (ids beyond 2^26) only
-- make a writer skip a slot. A statement writing for several users (the owner's
-- maintenance) takes a slot for each in turn; only the last is remembered, so a
-- later statement takes the others' again (a slot whose lock it then holds, most
-- often the same) and moves their data versions once more, which changes nothing
-- a reader sees. Called through app_private.transaction_counter_slot by the
-- tracking triggers (sql/functions/030_track_changes.sql) only, as the owner.
create or replace function app_private.counter_slot(user_id bigint) returns smallint
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  -- No initial values and as few expressions as it takes: PL/pgSQL sets each
  -- expression up again in every transaction, which costs more than the
  -- work here.
  slot int;
  remembered text;
begin
  for step in 0 .. 31 loop
    slot := (pg_backend_pid() + step) % 32;
    -- 1347571276 is 'PRCL': counter slot locks, apart from every other advisory lock.
    exit when pg_try_advisory_xact_lock(1347571276, ((counter_slot.user_id % 67108864) * 32 + slot)::int);
    slot := null;
  end loop;
  insert into app_hidden.data_versions as v (user_id, slot, version)
  values (counter_slot.user_id, coalesce(slot, pg_backend_pid() % 32), 1)
  on conflict on constraint data_versions_pkey do update set version = v.version + 1
  returning v.slot into slot;
  -- An assignment, not PERFORM: PERFORM runs a whole query.
  remembered := set_config('prompter.counter_slot', counter_slot.user_id || ':' || slot, true);
  return slot;
end;
$$;
comment on function app_private.counter_slot(bigint) is
  'Takes a counter slot of this user for the current transaction, without waiting for other writers, and moves the user''s data version.';

-- The slot this transaction adds to for a user: the remembered one, or a new
-- one. Plain SQL, so the planner inlines it into the trigger's statements: a
-- write after the first costs no function call.
create or replace function app_private.transaction_counter_slot(user_id bigint) returns smallint
language sql volatile
as $$
  select coalesce(
    case when pg_catalog.split_part(pg_catalog.current_setting('prompter.counter_slot', true), ':', 1) operator(pg_catalog.=) user_id::text
         then pg_catalog.split_part(pg_catalog.current_setting('prompter.counter_slot', true), ':', 2)::smallint end,
    app_private.counter_slot(user_id))
$$;
comment on function app_private.transaction_counter_slot(bigint) is
  'The counter slot of this user that the current transaction adds to, taken at its first write for the user.';
