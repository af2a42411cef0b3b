-- Called by the gateway for every request with a verified token, before it
-- runs anything as the caller: the role the request runs as (app_user or
-- app_admin, from users.is_admin now, not from the token), or PRSES when the
-- user is gone, disabled, or the token was revoked. Our tokens carry the
-- generation they were issued at; external ones (token_generation null) must
-- be issued after the last revocation.
-- Security definer, for the gateway's login itself (which, NOINHERIT, reads
-- nothing else): it reads one users row by primary key and reveals only whether
-- the token still holds. Named gateway_* so app_private.ensure_authenticator
-- (least privilege, issue 11) grants it to that login like the health checks.
create or replace function app_hidden.gateway_session_role(user_id bigint, token_generation integer, issued_at bigint)
returns text
language plpgsql stable security definer
set search_path = pg_catalog
as $$
declare
  role text;
begin
  select case when u.is_admin then 'app_admin' else 'app_user' end into role
    from app_public.users u
   where u.id = gateway_session_role.user_id
     and not u.is_disabled
     and case when gateway_session_role.token_generation is not null
              then u.token_generation = gateway_session_role.token_generation
              else u.tokens_revoked_at is null or gateway_session_role.issued_at > extract(epoch from u.tokens_revoked_at)
         end;
  if role is null then
    raise exception 'This session has ended (signed out everywhere, password changed, or account disabled or removed); sign in again.'
      using errcode = 'PRSES';
  end if;
  return role;
end;
$$;
