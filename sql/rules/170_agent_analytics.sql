-- The per-day figures' triggers (sql/functions/231_track_agent_days.sql), who
-- reads their tables, and the analytics functions' grants and GraphQL shape.
-- Inserts are counted by the tables' one insert trigger (_500_track_insert,
-- sql/functions/236_bookkeeping_inserts.sql), which had a trigger of its own here.
drop trigger if exists _510_analytics_insert on app_public.prompt_versions;
drop trigger if exists _510_analytics_insert on app_public.judge_scores;
drop trigger if exists _510_analytics_insert on app_public.best_heads;
drop function if exists app_private.tg__analytics_version_inserts(), app_private.tg__analytics_score_inserts(),
  app_private.tg__analytics_head_inserts();

create or replace trigger _510_analytics_update after update on app_public.prompt_versions
  referencing new table as new_rows old table as old_rows
  for each statement execute function app_private.tg__analytics_version_updates();
create or replace trigger _110_analytics_delete before delete on app_public.prompt_versions
  for each row execute function app_private.tg__analytics_version_deletes();

create or replace trigger _510_analytics_update after update on app_public.prompts
  referencing new table as new_rows old table as old_rows
  for each statement execute function app_private.tg__analytics_prompt_updates();
create or replace trigger _110_analytics_delete before delete on app_public.prompts
  for each row execute function app_private.tg__analytics_prompt_deletes();

create or replace trigger _510_analytics_update after update on app_public.judge_scores
  referencing new table as new_rows old table as old_rows
  for each statement execute function app_private.tg__analytics_score_changes();
create or replace trigger _510_analytics_delete after delete on app_public.judge_scores referencing old table as old_rows
  for each statement execute function app_private.tg__analytics_score_changes();

create or replace trigger _510_analytics_update after update on app_public.best_heads
  referencing new table as new_rows old table as old_rows
  for each statement execute function app_private.tg__analytics_head_changes();
create or replace trigger _510_analytics_delete after delete on app_public.best_heads referencing old table as old_rows
  for each statement execute function app_private.tg__analytics_head_changes();

create or replace trigger _110_analytics_delete before delete on app_public.users
  for each row execute function app_private.tg__analytics_user_deletes();

-- A user reads their own rows, an admin every user's and the all-users rows.
do $$
declare
  own_table text;
begin
  foreach own_table in array array['agent_day_stats', 'agent_pair_day_stats'] loop
    execute format('drop policy if exists select_own on app_hidden.%1$I;
                    create policy select_own on app_hidden.%1$I for select to app_user, app_reader
                      using (user_id = (select app_public.current_user_id()));
                    drop policy if exists select_all on app_hidden.%1$I;
                    create policy select_all on app_hidden.%1$I for select to app_admin, app_auditor using (true);', own_table);
  end loop;
  foreach own_table in array array['agent_day_totals', 'agent_pair_day_totals'] loop
    execute format('drop policy if exists select_all on app_hidden.%1$I;
                    create policy select_all on app_hidden.%1$I for select to app_admin, app_auditor using (true);', own_table);
  end loop;
end
$$;

-- SQL logins (app_reader) and the API's users read them; what they see is theirs.
grant execute on function app_hidden.check_day_range(date, date), app_hidden.wilson_interval(bigint, bigint),
  app_hidden.agent_figures(text, date, date), app_hidden.agent_pairs(date, date), app_hidden.inverted(float8[], int)
  to app_user, app_reader;
grant execute on function app_public.agent_effectiveness_between(date, date), app_public.agent_effectiveness_series(text, date, date),
  app_public.agent_head_to_head(date, date), app_public.agent_ratings(date, date)
  to app_user, app_reader;
