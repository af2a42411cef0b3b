--! Previous: sha1:79987b1ca6baa3a14d5e7e81da036955b458b4b4
--! Hash: sha1:4c991a0f199573b2981563da1941590ae688709d
--! Message: run key retention

-- recordRun's idempotency keys are remembered for RUN_KEY_RETENTION_DAYS: the
-- hourly run_key_retention job deletes older ones, which this index finds.
create index if not exists recorded_runs_created_at_idx on app_hidden.recorded_runs (created_at);
