-- recordRun's idempotency keys belong to their user, like every other row of theirs.
alter table app_hidden.recorded_runs alter column user_id set default app_public.current_user_id();
drop policy if exists select_own on app_hidden.recorded_runs;
create policy select_own on app_hidden.recorded_runs for select to app_user
  using (user_id = (select app_public.current_user_id()));
drop policy if exists insert_own on app_hidden.recorded_runs;
create policy insert_own on app_hidden.recorded_runs for insert to app_user
  with check (user_id = (select app_public.current_user_id()));
drop policy if exists update_own on app_hidden.recorded_runs;
create policy update_own on app_hidden.recorded_runs for update to app_user
  using (user_id = (select app_public.current_user_id())) with check (user_id = (select app_public.current_user_id()));

grant execute on function app_hidden.reject_run_element(text, text) to app_user;
grant execute on function app_public.record_run(jsonb) to app_user;
