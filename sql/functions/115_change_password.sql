-- Changes the signed-in user's password and ends every earlier token; returns a
-- token for the new generation, so this client stays signed in. A wrong current
-- password returns null (like authenticate, so the failure is recorded and
-- throttled: a stolen token must not become a way to guess the password).
create or replace function app_public.change_password(old_password text, new_password text) returns app_public.jwt_token
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  me app_public.users;
  new_hash text := app_private.password_hash(new_password);
begin
  select * into me from app_public.users u where u.id = app_public.current_user_id();
  if me.id is null then
    raise exception 'Sign in to change your password.' using errcode = 'PRLGN';
  end if;
  perform app_private.assert_sign_in_allowed(me.username);
  if not app_private.password_matches(me.id, old_password) then
    perform app_private.record_sign_in_failure(me.username);
    return null;
  end if;
  perform app_private.forget_sign_in_failures(me.username);
  perform app_private.set_password(me.id, new_hash);
  select * into me from app_public.users u where u.id = me.id;
  return app_private.jwt_for(me);
end;
$$;
comment on function app_public.change_password(text, text) is
  'Changes your password and signs out every other session; returns a new token, or null when the current password is wrong.';

-- Stores a hash and revokes every earlier token (change_password and
-- `prompter user set-password`).
create or replace function app_private.set_password(user_id bigint, new_hash text) returns void
language sql volatile
set search_path = pg_catalog
as $$
  insert into app_private.user_secrets (user_id, password_hash) values (set_password.user_id, new_hash)
  on conflict (user_id) do update set password_hash = excluded.password_hash;
  select app_private.revoke_tokens(set_password.user_id);
$$;
