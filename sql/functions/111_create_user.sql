-- An account with a password: what register (when registration is open) and
-- `prompter user add` share.
create or replace function app_private.create_user(username text, password text) returns app_public.users
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  new_user app_public.users;
  new_hash text := app_private.password_hash(password);
begin
  begin
    insert into app_public.users (username) values (create_user.username) returning * into new_user;
  exception
    when unique_violation then
      raise exception 'The username "%" is taken; choose another.', create_user.username using errcode = 'PRTKN';
    when check_violation or not_null_violation then
      raise exception 'A username is 2 to 63 letters, digits, ".", "_" or "-", starting with a letter.'
        using errcode = 'PRUSN';
  end;
  insert into app_private.user_secrets (user_id, password_hash) values (new_user.id, new_hash);
  return new_user;
end;
$$;
