create or replace function app_public.register(username text, password text) returns app_public.jwt_token
language plpgsql volatile security definer
set search_path = pg_catalog, public
as $$
declare
  new_user app_public.users;
begin
  if password is null or length(password) < 8 then
    raise exception 'Choose a password of at least 8 characters.' using errcode = 'PRWKP';
  end if;
  if length(password) > 72 then
    -- bcrypt ignores everything after 72 bytes; refuse rather than silently truncate.
    raise exception 'Choose a password of at most 72 characters.' using errcode = 'PRWKP';
  end if;
  begin
    insert into app_public.users (username) values (register.username) returning * into new_user;
  exception
    when unique_violation then
      raise exception 'The username "%" is taken; choose another.', register.username using errcode = 'PRTKN';
    when check_violation or not_null_violation then
      raise exception 'A username is 2 to 63 letters, digits, ".", "_" or "-", starting with a letter.'
        using errcode = 'PRUSN';
  end;
  insert into app_private.user_secrets (user_id, password_hash)
    values (new_user.id, crypt(password, gen_salt('bf', 10)));
  return app_private.jwt_for(new_user);
end;
$$;
comment on function app_public.register(text, text) is
  'Creates an account and returns a token for it.';
