-- Feeds (sql/functions/200-204): stamps, tombstones, policies, grants, tags.
do $$
declare
  tracked text;
begin
  foreach tracked in array array['prompts', 'prompt_versions', 'judge_scores', 'best_heads'] loop
    execute format(
      'create or replace trigger _050_stamp_written_in before update on app_public.%1$I
         for each row execute function app_private.tg__stamp_written_in();
       create or replace trigger _510_leave_tombstones after delete on app_public.%1$I referencing old table as old_rows
         for each statement execute function app_private.tg__leave_tombstones();', tracked);
  end loop;
end
$$;

alter table app_public.feeds alter column user_id set default app_public.current_user_id();
create or replace trigger _100_prepare before insert on app_public.feeds
  for each row execute function app_private.tg_feeds__prepare();

do $$
declare
  owned text;
  own constant text := 'user_id = (select app_public.current_user_id())';
begin
  foreach owned in array array['app_public.feeds', 'app_public.feed_runs', 'app_hidden.tombstones'] loop
    execute format('drop policy if exists select_own on %1$s;
                    create policy select_own on %1$s for select to app_user, app_reader using (%2$s);
                    drop policy if exists select_all on %1$s;
                    create policy select_all on %1$s for select to app_admin, app_auditor using (true);',
      owned, own);
  end loop;
end
$$;
drop policy if exists insert_own on app_public.feeds;
create policy insert_own on app_public.feeds for insert to app_user with check (user_id = (select app_public.current_user_id()));
drop policy if exists delete_own on app_public.feeds;
create policy delete_own on app_public.feeds for delete to app_user using (user_id = (select app_public.current_user_id()));

-- A run reads as the feed's owner, so that role runs these.
grant execute on function app_hidden.feed_parts(text, boolean, boolean, pg_snapshot, jsonb) to app_user, app_reader;
grant execute on function app_hidden.feed_multi_agent_log_query(boolean, boolean, pg_snapshot, text) to app_user, app_reader;
grant execute on function app_hidden.check_feed_filters(text, jsonb) to app_user, app_reader;
grant execute on function app_hidden.is_timestamp(text) to app_user, app_reader;
grant execute on function app_public.request_feed_run(bigint) to app_user;
grant execute on function app_public.create_feed(text, text, text, jsonb, jsonb, boolean) to app_user;
grant execute on function app_public.set_feed_paused(bigint, boolean) to app_user;

-- GraphQL: feeds are created (createFeed), run and paused by the functions
-- above, deleted by delete; the worker alone records runs.
comment on table app_public.feeds is E'@behavior -insert -update\nA standing export: each run holds what changed since the run before.';
comment on column app_public.feeds.next_run_at is 'When the schedule runs the feed next (null: paused, or on request only).';
comment on table app_public.feed_runs is E'@behavior -insert -update -delete\nA run of a feed: the rows changed between its two snapshots.';
comment on column app_public.feed_runs.manifest_key is E'@behavior -*';
comment on column app_public.feed_runs.since_snapshot is E'@behavior -*';
comment on column app_public.feed_runs.snapshot is E'@behavior -*';
comment on column app_public.prompts.written_in is E'@behavior -*';
comment on column app_public.prompt_versions.written_in is E'@behavior -*';
comment on column app_public.judge_scores.written_in is E'@behavior -*';
comment on column app_public.best_heads.written_in is E'@behavior -*';
