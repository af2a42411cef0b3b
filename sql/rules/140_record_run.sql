-- recordRun writes and reads app_hidden.recorded_runs as the owner (it is a
-- security definer function, naming the caller in every query), so no API role
-- has any right on the table, and RLS with no policy refuses any other reader.
revoke all on app_hidden.recorded_runs from app_user;
drop policy if exists select_own on app_hidden.recorded_runs;
drop policy if exists insert_own on app_hidden.recorded_runs;
drop policy if exists update_own on app_hidden.recorded_runs;
alter table app_hidden.recorded_runs alter column user_id drop default;

revoke execute on function app_hidden.reject_run_element(text, text) from app_user;
grant execute on function app_public.record_run(jsonb) to app_user;
