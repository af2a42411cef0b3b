-- The worker starts (or retries) an export. Returns the export, or null when
-- there is nothing to do: the row is gone (deleted with its user, or expired)
-- or it has finished already (the job ran twice).
-- An export runs with the rights its requester has when it starts, not when it
-- was asked for: if the requester has since been disabled, or lost the admin
-- rights an export of everyone's data was asked with (user demote, or an admin
-- SQL login demoted with its user), or the SQL login that asked was removed,
-- the export fails for good at once with a code saying why (error_code), and
-- is returned so (status 'failed').
create or replace function app_private.export_started(export_id bigint, attempt int) returns app_public.exports
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  started app_public.exports;
  requester app_public.users;
  refusal_code text;
  refusal text;
begin
  select * into started from app_public.exports e where e.id = export_id and e.status in ('queued', 'running') for update;
  if not found then
    return null;
  end if;
  select * into requester from app_public.users u where u.id = started.user_id;
  if requester.is_disabled then
    refusal_code := 'PDEXD';
    refusal := 'The account that requested this export has been disabled, so it was not made.';
  elsif started.requested_role not in ('app_user', 'app_admin')
        and not exists (select from app_private.sql_logins l join pg_roles r on r.rolname = l.login
                         where l.login = started.requested_role and l.user_id = started.user_id) then
    refusal_code := 'PDEXL';
    refusal := 'The SQL login that requested this export has been removed, so it was not made.';
  elsif started.is_global and not (
          case when started.requested_role in ('app_user', 'app_admin') then requester.is_admin
               else pg_has_role(started.requested_role, 'app_auditor', 'member') end) then
    refusal_code := 'PDEXA';
    refusal := 'This export of everyone''s data was requested by an admin who is no longer one, so it was not made; request it again for your own data.';
  end if;

  update app_public.exports e
     set status = case when refusal is null then 'running' else 'failed' end,
         attempts = attempt, started_at = clock_timestamp(), progress_rows = 0,
         finished_at = case when refusal is not null then clock_timestamp() end,
         error_code = refusal_code, error_message = coalesce(refusal, e.error_message)
   where e.id = export_id
  returning * into started;
  perform pg_notify(app_private.exports_channel(), export_id::text);
  return started;
end;
$$;
