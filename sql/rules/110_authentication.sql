-- Authentication: who may call what (see sql/functions/110-116).
grant execute on function app_public.change_password(text, text) to app_user;
grant execute on function app_public.sign_out_everywhere() to app_user;

-- app_hidden.gateway_session_role is for the gateway's login alone (see its file).
revoke execute on function app_hidden.gateway_session_role(bigint, integer, bigint) from public;

-- Revocation bookkeeping; tokens carry the generation, clients need not see it.
comment on column app_public.users.token_generation is E'@behavior -*';
comment on column app_public.users.tokens_revoked_at is E'@behavior -*';
