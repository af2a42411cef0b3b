-- Row level security. Policies compare user_id directly with the session's user
-- (evaluated once per query), never through joins.
do $$
declare
  owned text;
  own constant text := 'user_id = (select app_public.current_user_id())';
begin
  foreach owned in array array['prompts', 'prompt_versions', 'judge_scores', 'best_heads',
                               'exports', 'agent_stats', 'data_versions'] loop
    execute format('drop policy if exists select_own on %1$s;
                    create policy select_own on %1$s for select to app_user, app_reader using (%2$s);
                    drop policy if exists select_all on %1$s;
                    create policy select_all on %1$s for select to app_admin, app_auditor using (true);',
      case when owned in ('agent_stats', 'data_versions') then 'app_hidden.' else 'app_public.' end || owned, own);
  end loop;

  foreach owned in array array['prompts', 'prompt_versions', 'judge_scores', 'best_heads'] loop
    execute format('drop policy if exists insert_own on app_public.%1$I;
                    create policy insert_own on app_public.%1$I for insert to app_user with check (%2$s);
                    drop policy if exists update_own on app_public.%1$I;
                    create policy update_own on app_public.%1$I for update to app_user using (%2$s) with check (%2$s);
                    drop policy if exists delete_own on app_public.%1$I;
                    create policy delete_own on app_public.%1$I for delete to app_user using (%2$s);',
      owned, own);
  end loop;
end
$$;

-- Database logins of analysts (app_reader) may queue exports too, never write data.
drop policy if exists insert_own on app_public.exports;
create policy insert_own on app_public.exports for insert to app_user, app_reader
  with check (user_id = (select app_public.current_user_id()));

drop policy if exists select_own on app_public.users;
create policy select_own on app_public.users for select to app_user, app_reader
  using (id = (select app_public.current_user_id()));
drop policy if exists select_all on app_public.users;
create policy select_all on app_public.users for select to app_admin, app_auditor using (true);
-- No API role updates users directly (renames: app_public.change_username).
drop policy if exists update_own on app_public.users;

drop policy if exists select_all on app_public.agents;
create policy select_all on app_public.agents for select to app_user, app_reader using (true);
drop policy if exists manage on app_public.agents;
create policy manage on app_public.agents for all to app_admin using (true) with check (true);

drop policy if exists select_all on app_public.export_kinds;
create policy select_all on app_public.export_kinds for select to app_user, app_reader using (true);
