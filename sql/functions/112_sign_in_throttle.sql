-- Throttled sign-in. Failures are counted per key: the username from this
-- client address (a guesser is slowed after a few tries), the username from
-- anywhere (many addresses), and the address whatever the username (one
-- address spraying many usernames). Unknown usernames are counted like known
-- ones, so the answers tell nothing about which exist. After free_failures,
-- each failure blocks the key for twice as long as the one before, at most 15
-- minutes, and a key forgets its failures an hour after the last one: a
-- throttled owner waits, but is never locked out for good.
-- The gateway passes the client address as prompter.client_address.
create or replace function app_private.sign_in_keys(username text)
returns table (key text, free_failures integer)
language sql stable
set search_path = pg_catalog
as $$
  select k.key, k.free_failures
    from (values
      ('user:' || lower(username) || ' from ' || coalesce(nullif(current_setting('prompter.client_address', true), ''), '-'), 5),
      ('user:' || lower(username), 50),
      ('address:' || nullif(current_setting('prompter.client_address', true), ''), 30)
    ) k (key, free_failures)
   where k.key is not null;
$$;

-- Raises PRTHR, with `message` and the wait, while any of `keys` is blocked
-- (sign-in here, username probes in 192_change_username.sql).
create or replace function app_private.raise_if_blocked(keys text[], message text) returns void
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  blocked_until timestamptz;
  wait_seconds integer;
begin
  select max(f.blocked_until) into blocked_until from app_private.sign_in_failures f where f.key = any (keys);
  if blocked_until > clock_timestamp() then
    wait_seconds := ceil(extract(epoch from blocked_until - clock_timestamp()))::integer;
    raise exception '%; try again in % seconds.', message, wait_seconds
      using errcode = 'PRTHR', detail = json_build_object('retryAfterSeconds', wait_seconds)::text;
  end if;
end;
$$;

-- Raises PRTHR while any of the keys is blocked. Holds a lock per username until
-- the attempt's transaction ends, so parallel guesses queue and each sees the
-- failures recorded before it: a row lock on the username's key, which only the
-- owner's functions can take (an advisory key any SQL login could hold, and so
-- keep a user from signing in).
create or replace function app_private.assert_sign_in_allowed(username text) returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
begin
  insert into app_private.sign_in_failures (key, failures, last_failed_at, blocked_until)
  values ('user:' || lower(coalesce(username, '')), 0, clock_timestamp(), '-infinity')
  on conflict (key) do nothing;
  perform from app_private.sign_in_failures f where f.key = 'user:' || lower(coalesce(username, '')) for update;
  perform app_private.raise_if_blocked(array(select k.key from app_private.sign_in_keys(username) k), 'Too many failed sign-ins');
end;
$$;

-- One failure more on a key (a sign-in, or a username probe: 192_change_username):
-- past free_failures, the key is blocked for twice as long as the time before.
create or replace function app_private.count_failure(key text, free_failures integer) returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  failure_count integer;
begin
  insert into app_private.sign_in_failures as f (key, failures, last_failed_at, blocked_until)
  values (count_failure.key, 1, clock_timestamp(), clock_timestamp())
  on conflict on constraint sign_in_failures_pkey do update
    set failures = case when f.last_failed_at < clock_timestamp() - interval '1 hour' then 1 else f.failures + 1 end,
        last_failed_at = clock_timestamp()
  returning f.failures into failure_count;
  if failure_count >= free_failures then
    update app_private.sign_in_failures f
       set blocked_until = clock_timestamp() + least(2 ^ (failure_count - free_failures), 900) * interval '1 second'
     where f.key = count_failure.key;
  end if;
  -- Keys of failures long past; the index keeps this to the rows it removes.
  delete from app_private.sign_in_failures f where f.last_failed_at < clock_timestamp() - interval '1 day';
end;
$$;

create or replace function app_private.record_sign_in_failure(username text) returns void
language sql volatile
set search_path = pg_catalog
as $$
  select count(app_private.count_failure(k.key, k.free_failures)) from app_private.sign_in_keys(username) k;
$$;

-- After a successful sign-in the username starts afresh; the address does not
-- (one good account must not reset a guesser's count).
create or replace function app_private.forget_sign_in_failures(username text) returns void
language sql volatile
set search_path = pg_catalog
as $$
  delete from app_private.sign_in_failures f
   using app_private.sign_in_keys(username) k
   where f.key = k.key and k.key like 'user:%';
$$;
