// The "run_key_retention" job (hourly, from the worker's crontab): forgets
// recordRun's idempotency keys older than RUN_KEY_RETENTION_DAYS, so that the
// table of keys does not grow with every run ever recorded. The runs stay.
import type { JobHelpers } from "graphile-worker";
import { assertJobObject, type TaskContext } from "../task-context.ts";

export default async function runKeyRetentionTask(payload: unknown, _helpers: JobHelpers, context: TaskContext): Promise<void> {
  assertJobObject("run_key_retention", payload);
  const { rows } = await context.pool.query<{ forgotten: string }>(
    "select app_private.delete_expired_run_keys($1) as forgotten",
    [context.runKeyRetentionDays],
  );
  context.log.info({ forgottenRunKeys: Number(rows[0].forgotten), retentionDays: context.runKeyRetentionDays }, "run key retention");
}
