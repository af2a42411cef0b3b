// The "tombstone_retention" job (hourly, from the worker's crontab): deletes the
// tombstones of deleted rows that every feed has already delivered, so that
// app_hidden.tombstones holds only what some feed's next run still needs.
import type { JobHelpers } from "graphile-worker";
import { assertJobObject, type TaskContext } from "../task-context.ts";

export default async function tombstoneRetentionTask(payload: unknown, _helpers: JobHelpers, context: TaskContext): Promise<void> {
  assertJobObject("tombstone_retention", payload);
  const { rows } = await context.pool.query<{ deleted: string }>("select app_private.delete_unneeded_tombstones() as deleted");
  context.log.info({ deletedTombstones: Number(rows[0].deleted) }, "tombstone retention");
}
