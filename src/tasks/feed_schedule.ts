// The "feed_schedule" job (every minute, from the worker's crontab): queues a
// run of each feed that is due and not paused. A feed whose runs were missed
// gets one run, which catches up on everything since its last.
import type { JobHelpers } from "graphile-worker";
import { assertJobObject, type TaskContext } from "../task-context.ts";

export default async function feedScheduleTask(payload: unknown, _helpers: JobHelpers, context: TaskContext): Promise<void> {
  assertJobObject("feed_schedule", payload);
  const { rows } = await context.pool.query<{ queued: number }>("select app_private.queue_due_feeds() as queued");
  if (rows[0].queued > 0) context.log.info({ queuedFeedRuns: rows[0].queued }, "feed schedule");
}
