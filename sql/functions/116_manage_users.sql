-- `prompter user ...`: what an operator may do to accounts. Every change that
-- takes rights away (demote, disable, remove, set-password) holds from the
-- user's next request, since the gateway asks app_hidden.gateway_session_role each time;
-- disabling and a password reset also revoke every token issued so far.
create or replace function app_private.user_id_for(username text) returns bigint
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  found_id bigint;
begin
  select u.id into found_id from app_public.users u where lower(u.username) = lower(user_id_for.username);
  if found_id is null then
    raise exception 'No user "%".', user_id_for.username using errcode = 'PRNFD';
  end if;
  return found_id;
end;
$$;

create or replace function app_private.list_users()
returns table (id bigint, username text, is_admin boolean, is_disabled boolean, has_password boolean, created_at timestamptz)
language sql stable
set search_path = pg_catalog
as $$
  select u.id, u.username, u.is_admin, u.is_disabled,
         exists (select from app_private.user_secrets s where s.user_id = u.id), u.created_at
    from app_public.users u
   order by lower(u.username);
$$;

create or replace function app_private.set_user_admin(username text, is_admin boolean) returns void
language sql volatile
set search_path = pg_catalog
as $$
  update app_public.users u set is_admin = set_user_admin.is_admin where u.id = app_private.user_id_for(set_user_admin.username);
$$;

create or replace function app_private.set_user_disabled(username text, is_disabled boolean) returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  target bigint := app_private.user_id_for(set_user_disabled.username);
begin
  update app_public.users u set is_disabled = set_user_disabled.is_disabled where u.id = target;
  -- Enabling again must not bring back the tokens that were out there.
  if set_user_disabled.is_disabled then
    perform app_private.revoke_tokens(target);
  end if;
end;
$$;

create or replace function app_private.remove_user(username text) returns void
language sql volatile
set search_path = pg_catalog
as $$
  delete from app_public.users u where u.id = app_private.user_id_for(remove_user.username);
$$;

-- An operator's reset: new password, every token revoked, throttling forgotten.
create or replace function app_private.reset_password(username text, password text) returns void
language plpgsql volatile
set search_path = pg_catalog
as $$
begin
  perform app_private.set_password(app_private.user_id_for(reset_password.username), app_private.password_hash(reset_password.password));
  perform app_private.forget_all_sign_in_failures(reset_password.username);
end;
$$;
