-- Whether a username is taken is what a rename or a registration tells, so
-- such answers are throttled like sign-in guesses: a rename (GraphQL
-- changeUsername) or registration (register) to a taken name counts a failure
-- on the user (renames) and on the client address (app_private.count_failure)
-- and returns instead of raising, so that the failure is committed (register
-- returns null, which the gateway answers PRTKN for); after a few, PRTHR until
-- the backoff has passed, whatever the name. A direct UPDATE of
-- users.username, whose unique violation would roll the count back, is not
-- granted (sql/rules/150_username_changes.sql).
create or replace function app_private.username_probe_keys(user_id bigint)
returns table (key text, free_failures integer)
language sql stable
set search_path = pg_catalog
as $$
  select k.key, k.free_failures
    from (values
      ('username probes of user:' || user_id, 5),
      ('username probes from address:' || nullif(current_setting('prompter.client_address', true), ''), 30)
    ) k (key, free_failures)
   where k.key is not null;
$$;

-- Raises PRTHR while the user's (if any) or the address's probes are blocked.
create or replace function app_private.assert_username_probes_allowed(user_id bigint) returns void
language sql stable
set search_path = pg_catalog
as $$
  select app_private.raise_if_blocked(array(select k.key from app_private.username_probe_keys(user_id) k),
    'Too many tries of usernames that are taken');
$$;

create or replace function app_private.count_username_probe(user_id bigint) returns void
language sql volatile
set search_path = pg_catalog
as $$
  select count(app_private.count_failure(k.key, k.free_failures)) from app_private.username_probe_keys(user_id) k;
$$;

create or replace function app_public.change_username(username text) returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  me bigint := app_public.current_user_id();
begin
  if me is null then
    raise exception 'Sign in to change your username.' using errcode = 'PRLGN';
  end if;
  -- One rename of a user at a time, so parallel probes each see the failures before them.
  perform from app_public.users u where u.id = me for update;
  perform app_private.assert_username_probes_allowed(me);
  begin
    update app_public.users u set username = change_username.username where u.id = me;
  exception
    when unique_violation then
      perform app_private.count_username_probe(me);
      return false;
    when check_violation or not_null_violation then
      raise exception 'A username is 2 to 63 letters, digits, ".", "_" or "-", starting with a letter.'
        using errcode = 'PRUSN';
  end;
  return true;
end;
$$;
comment on function app_public.change_username(text) is
  'Renames you; false when the username is taken by someone else (renames to taken names are throttled).';
