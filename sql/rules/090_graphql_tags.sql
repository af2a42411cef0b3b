-- How app_public appears in GraphQL (PostGraphile smart tags). The gateway
-- introspects as app_admin, so grants already decide which mutations and input
-- fields exist; these tags cover what grants cannot express.

-- Exports are requested through requestExport (the same insert, one way to call
-- it); the worker alone records their outcome.
comment on table app_public.exports is E'@behavior -insert -update -delete\nA requested export (CSV, JSONL or Parquet) and, once the worker has run it, its outcome.';
-- Bookkeeping for the worker and for `stale`, not for clients.
comment on column app_public.exports.requested_role is E'@behavior -*';
comment on column app_public.exports.data_version is E'@behavior -*';
-- Where the worker stored the file: the bucket's layout is the operator's business.
comment on column app_public.exports.object_key is E'@behavior -*';

-- Grouping needs ordering, which PostGraphile only allows on indexed columns;
-- per-agent figures group by source over a user's rows, which RLS narrows by user_id.
comment on column app_public.prompt_versions.source is E'@behavior +orderBy +filterBy +groupBy\nThe agent that wrote this version.';
comment on column app_public.judge_scores.source is E'@behavior +orderBy +filterBy +groupBy\nThe agent that wrote the scored version (copied from it).';

-- current_user_id()'s lookup for sessions that may be a reader login; clients ask current_user_id().
comment on function app_public.current_login_user_id() is E'@behavior -*\nThe app user this session acts for, told by its login (see current_user_id).';
