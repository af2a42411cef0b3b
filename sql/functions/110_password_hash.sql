-- The one place a password is judged and hashed (register, user add, password
-- changes and resets).
create or replace function app_private.password_hash(password text) returns text
language plpgsql volatile
set search_path = pg_catalog, public
as $$
begin
  if password is null or length(password) < 8 then
    raise exception 'Choose a password of at least 8 characters.' using errcode = 'PRWKP';
  end if;
  if length(password) > 72 then
    -- bcrypt ignores everything after 72 bytes; refuse rather than silently truncate.
    raise exception 'Choose a password of at most 72 characters.' using errcode = 'PRWKP';
  end if;
  return crypt(password, gen_salt('bf', 10));
end;
$$;

-- Whether the password is the user's. A user without a password (or no user)
-- costs one bcrypt all the same, so the time taken tells nothing.
create or replace function app_private.password_matches(user_id bigint, password text) returns boolean
language plpgsql volatile
set search_path = pg_catalog, public
as $$
declare
  stored_hash text;
begin
  select s.password_hash into stored_hash from app_private.user_secrets s where s.user_id = password_matches.user_id;
  if stored_hash is null then
    perform crypt(coalesce(password, ''), gen_salt('bf', 10));
    return false;
  end if;
  return stored_hash = crypt(coalesce(password, ''), stored_hash);
end;
$$;
