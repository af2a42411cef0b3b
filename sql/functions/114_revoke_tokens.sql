-- Ends every token issued to the user so far (see app_hidden.gateway_session_role).
create or replace function app_private.revoke_tokens(user_id bigint) returns void
language sql volatile
set search_path = pg_catalog
as $$
  update app_public.users u
     set token_generation = u.token_generation + 1, tokens_revoked_at = now()
   where u.id = revoke_tokens.user_id;
$$;

create or replace function app_public.sign_out_everywhere() returns void
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
begin
  if app_public.current_user_id() is null then
    raise exception 'Sign in to sign out.' using errcode = 'PRLGN';
  end if;
  perform app_private.revoke_tokens(app_public.current_user_id());
end;
$$;
comment on function app_public.sign_out_everywhere() is
  'Ends every token of the signed-in user, this one included.';
