-- Inserts go to a function of their table's own, updates and deletes to the
-- general one (see sql/functions/030_track_changes.sql).
do $$
declare
  tracked text;
  op text;
begin
  foreach tracked in array array['prompts', 'prompt_versions', 'judge_scores', 'best_heads'] loop
    foreach op in array array['insert', 'update', 'delete'] loop
      -- The inserts' one trigger also keeps the per-day figures and the
      -- multi_agent_log rows (sql/functions/236_bookkeeping_inserts.sql).
      -- recordRun adds a new prompt's versions, scores and best head to them
      -- itself (app_private.add_new_run_figures), as the owner only.
      execute format(
        'create or replace trigger _500_track_%2$s after %2$s on app_public.%1$I referencing %3$s
           for each statement %5$s execute function app_private.%4$I()',
        tracked, op,
        case op when 'insert' then 'new table as new_rows'
                when 'delete' then 'old table as old_rows'
                else 'new table as new_rows old table as old_rows' end,
        case op when 'insert' then case tracked when 'prompts' then 'tg__track_prompt_inserts'
                                                when 'prompt_versions' then 'tg__version_inserts'
                                                when 'judge_scores' then 'tg__score_inserts'
                                                else 'tg__best_head_inserts' end
                else 'tg__track_changes' end,
        case when op = 'insert' and tracked <> 'prompts' then 'when (not app_hidden.record_run_adds_figures())' else '' end);
    end loop;
  end loop;
end
$$;
-- Every writer of the tables runs it (the triggers' WHEN clause).
grant execute on function app_hidden.record_run_adds_figures() to app_user;
-- Before the inserts' one trigger (236_bookkeeping_inserts.sql), each kind of figure had its own.
drop function if exists app_private.tg__track_version_inserts(), app_private.tg__track_score_inserts(),
  app_private.tg__track_best_head_inserts();

create or replace trigger _100_fill_source before insert on app_public.judge_scores
  for each row when (new.source is null) execute function app_private.tg__fill_version_source();
create or replace trigger _100_fill_source before insert on app_public.best_heads
  for each row when (new.source is null) execute function app_private.tg__fill_version_source();
create or replace trigger _100_refill_source before update of prompt_version_id on app_public.best_heads
  for each row execute function app_private.tg__fill_version_source();

create or replace trigger _100_prepare before insert on app_public.exports
  for each row execute function app_private.tg_exports__prepare();
create or replace trigger _500_enqueue after insert on app_public.exports
  for each row execute function app_private.tg_exports__enqueue();

create or replace trigger _100_demote_sql_logins before update of is_admin, is_disabled or delete on app_public.users
  for each row when (old.is_admin) execute function app_private.tg_users__demote_sql_logins();
