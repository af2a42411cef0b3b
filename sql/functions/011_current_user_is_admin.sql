-- Admin rights come from the role the session runs as (app_admin through the
-- API, app_auditor for mapped admin database logins), which RLS also uses.
create or replace function app_public.current_user_is_admin() returns boolean
language sql stable
set search_path = pg_catalog
as $$
  select pg_has_role(current_user, 'app_admin', 'member')
      or pg_has_role(current_user, 'app_auditor', 'member');
$$;
comment on function app_public.current_user_is_admin() is
  'True when the session may read every user''s data.';
