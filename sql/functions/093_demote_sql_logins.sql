-- A login reads what its user reads: when an admin user loses admin rights, is
-- disabled (enabling does not restore them: add the login again) or is deleted, their admin logins (app_auditor) become plain reader logins at
-- once, in open sessions too, instead of reading everyone's data on. (A deleted
-- user's login then reads nothing; `prompter sql-user list` shows it for removal.)
-- Runs before the delete, while the mapping that cascades with the user is there.
create or replace function app_private.tg_users__demote_sql_logins() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  demoted name;
begin
  if tg_op = 'DELETE' or not new.is_admin or new.is_disabled then
    for demoted in
      update app_private.sql_logins set is_admin = false where user_id = old.id and is_admin returning login
    loop
      execute format('grant app_reader to %I', demoted);
      execute format('revoke app_auditor from %I', demoted);
    end loop;
  end if;
  return case tg_op when 'DELETE' then old else new end;
end;
$$;
