-- Wakes the gateway's requests waiting for the run (?wait=true), on the
-- channel they listen on for exports (a secret of the database, so SQL logins
-- hear none of it), under a key no export id can be.
create or replace function app_private.notify_feed_run(feed_id bigint, number int) returns boolean
language sql volatile
set search_path = pg_catalog
as $$
  select true from pg_notify(app_private.exports_channel(), format('feed_run:%s:%s', feed_id, number));
$$;

-- Queues a run of the feed. At most one run of a feed is queued or running, and
-- asking again returns it; a run that failed for good is queued again under
-- its number, so the numbers of a feed's runs have no gaps. Callers hold the
-- feed's row lock (request_feed_run, queue_due_feeds), which serialises them.
create or replace function app_private.queue_feed_run(feed app_public.feeds) returns app_public.feed_runs
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  latest app_public.feed_runs;
begin
  select * into latest from app_public.feed_runs r where r.feed_id = feed.id order by r.number desc limit 1;
  if latest.status in ('queued', 'running') then
    return latest;
  elsif latest.status = 'failed' then
    update app_public.feed_runs r
       set status = 'queued', attempts = 0, error_message = null, requested_at = clock_timestamp()
     where r.feed_id = feed.id and r.number = latest.number
    returning * into latest;
  else
    insert into app_public.feed_runs (feed_id, number, user_id, requested_at)
    values (feed.id, coalesce(latest.number, 0) + 1, feed.user_id, clock_timestamp())
    returning * into latest;
  end if;
  -- One job per run (the key): a run queued again resets its failed job.
  perform graphile_worker.add_job('feed_run', json_build_object('feedId', feed.id, 'run', latest.number),
    max_attempts => 5, job_key => format('feed_run:%s:%s', feed.id, latest.number));
  return latest;
end;
$$;

-- A run of one of your feeds, now (besides its schedule, paused or not).
create or replace function app_public.request_feed_run(feed_id bigint) returns app_public.feed_runs
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  feed app_public.feeds;
begin
  if app_public.current_user_id() is null then
    raise exception 'Sign in to run a feed.' using errcode = 'PRLGN';
  end if;
  select * into feed from app_public.feeds f
   where f.id = request_feed_run.feed_id and f.user_id = app_public.current_user_id()
     for update;
  if not found then
    raise exception 'There is no feed % of yours.', request_feed_run.feed_id using errcode = 'PRNFD';
  end if;
  return app_private.queue_feed_run(feed);
end;
$$;
comment on function app_public.request_feed_run(bigint) is
  'Queues a run of one of your feeds now; returns it (the queued or running run, if there is one).';

-- Pausing stops the schedule (runs on request still run); resuming makes the
-- next run due at once, and that one run catches up on everything missed.
create or replace function app_public.set_feed_paused(feed_id bigint, paused boolean) returns app_public.feeds
language plpgsql volatile security definer
set search_path = pg_catalog
as $$
declare
  feed app_public.feeds;
begin
  update app_public.feeds f
     set paused = set_feed_paused.paused,
         next_run_at = case when set_feed_paused.paused or f.every is null then null
                            when f.paused then clock_timestamp() else f.next_run_at end
   where f.id = set_feed_paused.feed_id and f.user_id = app_public.current_user_id()
  returning * into feed;
  if not found then
    raise exception 'There is no feed % of yours.', set_feed_paused.feed_id using errcode = 'PRNFD';
  end if;
  return feed;
end;
$$;
comment on function app_public.set_feed_paused(bigint, boolean) is
  'Pauses (true) or resumes (false) one of your feeds'' schedule. A resumed feed runs at once, catching up in one run.';

-- The scheduler (a job every minute): a run for each due feed that is not
-- paused, and its next time the first slot after now, so a feed whose runs
-- were missed (workers down, paused) catches up in one run.
create or replace function app_private.queue_due_feeds() returns int
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  feed app_public.feeds;
  queued int := 0;
begin
  for feed in
    select * from app_public.feeds f where not f.paused and f.next_run_at <= clock_timestamp()
       for update skip locked
  loop
    perform app_private.queue_feed_run(feed);
    update app_public.feeds f
       set next_run_at = feed.next_run_at + feed.every
                         * (floor(extract(epoch from clock_timestamp() - feed.next_run_at) / extract(epoch from feed.every)) + 1)
     where f.id = feed.id;
    queued := queued + 1;
  end loop;
  return queued;
end;
$$;

-- The worker starts (or retries) run `number` of the feed: the feed, the role
-- to read as, and the bounds. Nothing when there is nothing to do: the run
-- succeeded already, is gone with its feed, or was refused (a global feed
-- whose owner is no longer an admin).
create or replace function app_private.feed_run_started(feed_id bigint, number int, attempt int)
returns table (kind text, format text, options jsonb, filters jsonb, user_id bigint, role name,
               since_snapshot text, snapshot text)
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  feed app_public.feeds;
  run app_public.feed_runs;
  since text;
begin
  update app_public.feed_runs r
     set status = 'running', attempts = attempt, started_at = clock_timestamp(), error_message = null
   where r.feed_id = feed_run_started.feed_id and r.number = feed_run_started.number and r.status in ('queued', 'running')
  returning * into run;
  if not found then
    return;
  end if;
  select * into feed from app_public.feeds f where f.id = run.feed_id;
  -- Retrying cannot help here: the run fails at once, saying why, and is
  -- queued again with the feed's next request or schedule.
  if feed.is_global and not (select u.is_admin from app_public.users u where u.id = feed.user_id) then
    update app_public.feed_runs r
       set status = 'failed', finished_at = clock_timestamp(),
           error_message = format('Feed %s holds everyone''s rows, and its owner is no longer an admin; delete it or make its owner an admin again.', feed.id)
     where r.feed_id = run.feed_id and r.number = run.number;
    perform app_private.notify_feed_run(run.feed_id, run.number);
    return;
  end if;
  if run.number > 1 then
    select r.snapshot into since from app_public.feed_runs r
     where r.feed_id = run.feed_id and r.number = run.number - 1 and r.status = 'succeeded';
    if since is null then
      raise exception 'Run % of feed % cannot start before run % has succeeded.', run.number, run.feed_id, run.number - 1
        using errcode = 'PFORD';
    end if;
  end if;
  update app_public.feed_runs r set since_snapshot = since
   where r.feed_id = run.feed_id and r.number = run.number;
  perform app_private.notify_feed_run(run.feed_id, run.number);
  return query select feed.kind, feed.format, feed.options, feed.filters, feed.user_id,
    (case when feed.is_global then 'app_admin' else 'app_user' end)::name, since, run.snapshot;
end;
$$;

-- The snapshot an attempt reads from, recorded before it writes anything.
create or replace function app_private.feed_run_snapshot(feed_id bigint, number int, attempt int, snapshot text) returns boolean
language sql volatile
set search_path = pg_catalog
as $$
  with recorded as (
    update app_public.feed_runs r set snapshot = feed_run_snapshot.snapshot::pg_snapshot::text
     where r.feed_id = feed_run_snapshot.feed_id and r.number = feed_run_snapshot.number
       and r.status = 'running' and r.attempts = attempt
    returning 1)
  select exists (select from recorded);
$$;

-- Records a written run. Only the attempt that is running, with the snapshot
-- its manifest names, may: a late attempt gets false.
create or replace function app_private.feed_run_succeeded(
  feed_id bigint, number int, attempt int, snapshot text, rows bigint, files jsonb, manifest_key text, manifest_sha256 text
) returns boolean
language sql volatile
set search_path = pg_catalog
as $$
  with recorded as (
    update app_public.feed_runs r
       set status = 'succeeded', finished_at = clock_timestamp(), rows = feed_run_succeeded.rows,
           files = feed_run_succeeded.files, manifest_key = feed_run_succeeded.manifest_key,
           manifest_sha256 = feed_run_succeeded.manifest_sha256, error_message = null
     where r.feed_id = feed_run_succeeded.feed_id and r.number = feed_run_succeeded.number
       and r.status = 'running' and r.attempts = attempt and r.snapshot = feed_run_succeeded.snapshot
    returning 1)
  select exists (select from recorded) and app_private.notify_feed_run(feed_id, number);
$$;

create or replace function app_private.feed_run_failed(feed_id bigint, number int, attempt int, message text, final boolean) returns void
language sql volatile
set search_path = pg_catalog
as $$
  update app_public.feed_runs r
     set status = case when final then 'failed' else r.status end, error_message = message,
         finished_at = case when final then clock_timestamp() end
   where r.feed_id = feed_run_failed.feed_id and r.number = feed_run_failed.number
     and r.status = 'running' and r.attempts = attempt;
  select app_private.notify_feed_run(feed_id, number) where final;
$$;
