-- Self-service sign-up, open only while the gateway says so (ALLOW_REGISTRATION,
-- passed as prompter.allow_registration); operators use `prompter user add`.
create or replace function app_public.register(username text, password text) returns app_public.jwt_token
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  if coalesce(current_setting('prompter.allow_registration', true), '') <> 'on' then
    raise exception 'Registration is closed; ask an operator for an account.' using errcode = 'PRREG';
  end if;
  -- Whether a name is taken is throttled (192_change_username.sql): a taken
  -- name returns null, so the count commits; the gateway answers PRTKN for it.
  perform app_private.assert_username_probes_allowed(null);
  begin
    return app_private.jwt_for(app_private.create_user(register.username, register.password));
  exception when sqlstate 'PRTKN' then
    perform app_private.count_username_probe(null);
    return null;
  end;
end;
$$;
comment on function app_public.register(text, text) is
  'Creates an account and returns a token for it (when registration is open); null when the username is taken.';
