-- `prompter user add`: an account made by an operator, who alone may make it an admin.
create or replace function app_private.add_user(username text, password text, is_admin boolean default false) returns bigint
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  new_id bigint := (app_private.create_user(add_user.username, add_user.password)).id;
begin
  update app_public.users u set is_admin = add_user.is_admin where u.id = new_id;
  return new_id;
end;
$$;
