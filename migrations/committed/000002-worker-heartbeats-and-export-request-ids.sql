--! Previous: sha1:61089fadf4b8092483a13d3207f54c45d6e80831
--! Hash: sha1:411ab94dfdf2242c5c09bbbb143804620e5ce1f4
--! Message: worker heartbeats and export request ids

-- Each worker process records here that it is alive (prompter worker, every
-- WORKER_HEARTBEAT_INTERVAL). A worker silent for WORKER_DEAD_AFTER is presumed
-- dead, and its jobs are released to the others (app_private.release_dead_workers).
-- pool_id is graphile-worker's pool id, the value of its jobs' locked_by.
create table if not exists app_private.worker_heartbeats (
  pool_id text primary key,
  hostname text not null,
  pid int not null,
  started_at timestamptz not null default now(),
  last_seen timestamptz not null default now()
);
alter table app_private.worker_heartbeats enable row level security;

-- The X-Request-Id of the request that queued the export, so the worker's log
-- lines about it can be found from the gateway's (null for SQL and the CLI).
alter table app_public.exports add column if not exists request_id text;
