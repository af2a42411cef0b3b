-- app_hidden.multi_agent_log_rows follows every write of the tables it is made
-- from (sql/functions/260_refresh_multi_agent_log_rows.sql), and is read under
-- the same policies as they are: a user's own rows, or everyone's. A writer
-- that refreshes its prompts itself defers the triggers (see that file).
-- Inserts are refreshed by the tables' one insert trigger (_500_track_insert,
-- sql/functions/236_bookkeeping_inserts.sql), which had a trigger of its own here.
do $$
declare
  source_table text;
begin
  foreach source_table in array array['prompt_versions', 'judge_scores', 'best_heads'] loop
    execute format(
      'drop trigger if exists _600_multi_agent_log_insert on app_public.%1$I;
       create or replace trigger _600_multi_agent_log_update after update on app_public.%1$I
         referencing new table as new_rows old table as old_rows for each statement when (%2$s) execute function app_private.tg__multi_agent_log_changes();
       create or replace trigger _600_multi_agent_log_delete after delete on app_public.%1$I
         referencing old table as old_rows for each statement when (%2$s) execute function app_private.tg__multi_agent_log_changes();',
      source_table,
      $when$pg_catalog.current_setting('prompter.multi_agent_log_rows', true) is distinct from 'deferred'$when$);
  end loop;
end
$$;
drop function if exists app_private.tg__multi_agent_log_inserts(), app_private.tg__multi_agent_log_score_inserts();

drop policy if exists select_own on app_hidden.multi_agent_log_rows;
create policy select_own on app_hidden.multi_agent_log_rows for select to app_user, app_reader
  using (user_id = (select app_public.current_user_id()));
drop policy if exists select_all on app_hidden.multi_agent_log_rows;
create policy select_all on app_hidden.multi_agent_log_rows for select to app_admin, app_auditor using (true);
