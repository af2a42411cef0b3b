-- The claims the gateway signs. Lifetime comes from the prompter.jwt_ttl setting
-- (set by the gateway from JWT_EXPIRES_IN), 24 hours by default. The role claim
-- is informative only: app_hidden.gateway_session_role decides the role on every request.
-- token_generation ties the token to the user's current generation, so bumping
-- it (app_private.revoke_tokens) ends the token.
create or replace function app_private.jwt_for(u app_public.users) returns app_public.jwt_token
language sql stable
set search_path = pg_catalog
as $$
  select (
    case when u.is_admin then 'app_admin' else 'app_user' end,
    u.id,
    extract(epoch from now()
      + coalesce(nullif(current_setting('prompter.jwt_ttl', true), ''), '24 hours')::interval)::bigint,
    u.token_generation
  )::app_public.jwt_token;
$$;
