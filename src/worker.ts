// The job runner: graphile-worker with the tasks of src/tasks/ and the
// retention schedule. Jobs are queued in SQL (see app_private.tg_exports__enqueue),
// so any number of workers can share the queue; heartbeats let them retry the
// jobs of a worker that died (src/heartbeats.ts).
import { EventEmitter } from "node:events";
import { mkdir } from "node:fs/promises";
import { Logger, parseCronItems, run, type Job, type JobHelpers, type Task, type WorkerEvents } from "graphile-worker";
import pg from "pg";
import { createAlerts } from "./alerts.ts";
import type { Config } from "./config.ts";
import { startHeartbeats, type DeadWorker } from "./heartbeats.ts";
import { LoggedError, type Log } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { createStorage, type ExportStorage } from "./storage/index.ts";
import exportTask from "./tasks/export.ts";
import exportRetentionTask from "./tasks/export_retention.ts";

/** An export that will not be retried, with what its log line and alert tell. */
export interface FailedExport {
  exportId: number;
  userId: string;
  kind: string;
  attempt: number;
  requestId: string | null;
  error: string;
  [detail: string]: unknown;
}

/** What tasks need besides their payload; passed by the worker, not read from the environment. */
export interface TaskContext {
  /** The worker's pool: connects as the database owner. */
  pool: pg.Pool;
  log: Log;
  metrics: Metrics;
  /** Where export files go: EXPORT_DIR or S3. */
  storage: ExportStorage;
  exportRetentionDays: number;
  /** Logs the failure at error level, counts it and posts an alert (in the background). */
  exportFailedForGood(failure: FailedExport): void;
}

/** A task of src/tasks/: graphile-worker's task function, plus the context. */
type ContextTask = (payload: unknown, helpers: JobHelpers, context: TaskContext) => Promise<void>;

const TASKS: Record<string, ContextTask> = {
  export: exportTask,
  export_retention: exportRetentionTask,
};

/** Hourly; runs on whichever worker claims it first. */
const CRON_ITEMS = [
  { task: "export_retention", match: "17 * * * *", identifier: "export_retention", options: { backfillPeriod: 0 } },
];

const LEVELS = { error: "error", warning: "warn", info: "info", debug: "debug" } as const;

/**
 * graphile-worker's own messages, routed into our log with the job's fields.
 * Its line for each finished job repeats what the tasks log themselves, so it
 * is a debug line, as is a failure a task has reported (LoggedError); any
 * other failure is a warning while the job will be retried.
 */
function workerLogger(log: Log): Logger {
  return new Logger((scope) => (level, message, meta) => {
    const job = meta?.job as Job | undefined;
    const fields = { workerId: scope.workerId, jobId: job?.id ?? scope.jobId, task: job?.task_identifier ?? scope.taskIdentifier };
    if (meta?.success || meta?.error instanceof LoggedError) {
      log.debug(fields, message);
    } else if (meta?.failure && job) {
      // The message ends with the stack trace; the err field carries it.
      const retried = job.attempts < job.max_attempts;
      log[retried ? "warn" : "error"]({ ...fields, attempt: job.attempts, maxAttempts: job.max_attempts, err: meta.error }, message.split("\n")[0]);
    } else {
      log[LEVELS[level]](fields, message);
    }
  });
}

export interface Worker {
  /** graphile-worker's pool id: what the jobs it runs have in locked_by, and its heartbeat's key. */
  poolId: string;
  /**
   * Stops taking jobs, lets running ones finish (aborting them after
   * SHUTDOWN_GRACE, so they are retried), signs off and closes the pool.
   */
  stop(): Promise<void>;
  /** Settles when the worker has stopped; rejects if it stopped because of an error. */
  done: Promise<void>;
}

export async function startWorker(
  config: Config,
  databaseUrl: string,
  log: Log,
  options: { metrics?: Metrics } = {},
): Promise<Worker> {
  if (config.exportStorage.kind === "local") await mkdir(config.exportDir, { recursive: true });
  const storage = createStorage(config, log);
  const pool = new pg.Pool({
    // LISTEN and graphile-worker's locking need a session: no transaction-mode pooler.
    connectionString: config.directDatabaseUrl ?? databaseUrl,
    max: config.workerPoolMax,
    application_name: "prompter-worker",
  });
  // A connection that drops (database restart) must not crash the process: idle
  // ones are replaced, and a busy one fails its query, so its job is retried.
  pool.on("error", (error) => log.warn({ error: error.message }, "idle worker database connection failed"));
  pool.on("connect", (client) =>
    client.on("error", (error) => log.warn({ error: error.message }, "worker database connection failed")),
  );
  const metrics = options.metrics ?? createMetrics();
  metrics.watchPool("worker", pool);
  metrics.watchDatabase(pool, config.workerDeadAfterSeconds, log);
  const alerts = createAlerts(config.alertWebhookUrl, log, metrics);
  const context: TaskContext = {
    pool,
    log,
    metrics,
    storage,
    exportRetentionDays: config.exportRetentionDays,
    exportFailedForGood(failure) {
      log.error(failure, "export failed for good");
      metrics.exportsFailed.inc({ kind: failure.kind });
      alerts.send({
        alert: "export_failed",
        severity: "error",
        summary: `Export ${failure.exportId} (${failure.kind}) failed after ${failure.attempt} attempt(s): ${failure.error}`,
        ...failure,
      });
    },
  };
  const taskList: Record<string, Task> = Object.fromEntries(
    Object.entries(TASKS).map(([name, task]) => [name, (payload, helpers) => task(payload, helpers, context)]),
  );
  // The pool id is only announced while run() starts.
  const events: WorkerEvents = new EventEmitter();
  let poolId = "";
  events.once("pool:create", ({ workerPool }) => (poolId = workerPool.id));
  let runner;
  try {
    runner = await run({
      pgPool: pool,
      concurrency: config.workerConcurrency,
      noHandleSignals: true,
      taskList,
      parsedCronItems: parseCronItems(CRON_ITEMS),
      logger: workerLogger(log),
      events,
      preset: {
        worker: {
          // Unbatched, graphile-worker does not wait for a job's outcome to be
          // recorded before it reports itself stopped; then closing the pool loses
          // it and the job stays locked for hours. Batches are flushed on stop.
          completeJobBatchDelay: 0,
          failJobBatchDelay: 0,
          gracefulShutdownAbortTimeout: config.shutdownGraceSeconds * 1000,
        },
      },
    });
  } catch (error) {
    await pool.end();
    throw error;
  }
  let heartbeats;
  try {
    heartbeats = await startHeartbeats({
      pool,
      poolId,
      intervalSeconds: config.workerHeartbeatSeconds,
      deadAfterSeconds: config.workerDeadAfterSeconds,
      log,
      onDeadWorker: (dead) => releasedDeadWorker(context, dead),
    });
  } catch (error) {
    await runner.stop().catch(() => {});
    await pool.end();
    throw error;
  }
  // Beats go on while running jobs finish, so no one takes them meanwhile.
  const done = runner.promise.finally(async () => {
    await heartbeats.stop().catch((error: Error) => log.warn({ error: error.message }, "could not sign off the heartbeat"));
    await alerts.flush();
    await pool.end();
  });
  let stopping: Promise<void> | undefined;
  return {
    poolId,
    stop() {
      stopping ??= runner.stop().then(() => done);
      return stopping;
    },
    done,
  };
}

async function releasedDeadWorker(context: TaskContext, dead: DeadWorker): Promise<void> {
  context.metrics.deadWorkers.inc();
  context.log.warn(
    {
      deadPoolId: dead.pool_id,
      deadHostname: dead.hostname,
      deadPid: dead.pid,
      lastSeen: dead.last_seen,
      releasedJobs: dead.released_jobs.map(Number),
    },
    "worker presumed dead: its jobs are released to be retried",
  );
  if (!dead.failed_exports.length) return;
  const { rows } = await context.pool.query<{ id: string; user_id: string; kind: string; attempts: number; request_id: string | null }>(
    "select id, user_id, kind, attempts, request_id from app_public.exports where id = any($1)",
    [dead.failed_exports],
  );
  for (const row of rows) {
    context.exportFailedForGood({
      exportId: Number(row.id),
      userId: row.user_id,
      kind: row.kind,
      attempt: row.attempts,
      requestId: row.request_id,
      error: `its worker (${dead.pool_id} on ${dead.hostname ?? "an unknown host"}) stopped during the last attempt`,
    });
  }
}
