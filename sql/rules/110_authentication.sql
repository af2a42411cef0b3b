-- Authentication: who may call what (see sql/functions/112-115).
grant execute on function app_public.change_password(text, text) to app_user;
grant execute on function app_public.sign_out_everywhere() to app_user;

-- The gateway's own login asks, before each request, what a token's user may do
-- now. It holds nothing else: usage on app_hidden gives no table.
grant usage on schema app_hidden to authenticator;
grant execute on function app_hidden.session_role(bigint, integer, bigint) to authenticator;

-- Revocation bookkeeping; tokens carry the generation, clients need not see it.
comment on column app_public.users.token_generation is E'@behavior -*';
comment on column app_public.users.tokens_revoked_at is E'@behavior -*';
