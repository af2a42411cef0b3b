--! Previous: sha1:29a17378520fe908d04b7e812872c9b799387ae6
--! Hash: sha1:cf7ebc5804bff3d8124da53d442b5d698e8f3df0
--! Message: authentication

-- The token names a user; the database decides, on every request, whether that
-- user exists, is enabled and is an admin (app_hidden.session_role).
alter table app_public.users add column if not exists is_disabled boolean not null default false;
-- Bumped to revoke every token issued before (password change, sign out
-- everywhere, disabling, an operator's reset); our tokens carry the generation
-- they were issued at. External tokens carry none: they must be issued after
-- tokens_revoked_at instead.
alter table app_public.users add column if not exists token_generation integer not null default 0;
alter table app_public.users add column if not exists tokens_revoked_at timestamptz;

do $$
begin
  if not exists (
    select from pg_attribute
     where attrelid = 'app_public.jwt_token'::regclass and attname = 'token_generation' and not attisdropped
  ) then
    alter type app_public.jwt_token add attribute token_generation integer;
  end if;
end
$$;

-- Failed sign-ins, per key: the username from one address, the username from
-- anywhere, the address for any username (see app_private.record_sign_in_failure).
create table if not exists app_private.sign_in_failures (
  key text primary key,
  failures integer not null,
  last_failed_at timestamptz not null,
  blocked_until timestamptz not null
);
create index if not exists sign_in_failures_last_failed_at_idx on app_private.sign_in_failures (last_failed_at);
alter table app_private.sign_in_failures enable row level security;
