create or replace function app_public.authenticate(username text, password text) returns app_public.jwt_token
language plpgsql volatile security definer
set search_path = pg_catalog, public
as $$
declare
  found_user app_public.users;
  stored_hash text;
begin
  select * into found_user from app_public.users u where lower(u.username) = lower(authenticate.username);
  select password_hash into stored_hash from app_private.user_secrets where user_id = found_user.id;
  if stored_hash is null then
    -- Hash anyway, so an unknown user takes as long as a wrong password.
    perform crypt(coalesce(password, ''), gen_salt('bf', 10));
  elsif stored_hash = crypt(coalesce(password, ''), stored_hash) then
    return app_private.jwt_for(found_user);
  end if;
  raise exception 'Wrong username or password.' using errcode = 'PRCRD';
end;
$$;
comment on function app_public.authenticate(text, text) is
  'Returns a token for the user with this username and password.';
