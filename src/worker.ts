// The job runner: graphile-worker with the tasks of src/tasks/ and the
// retention schedule. Jobs are queued in SQL (see app_private.tg_exports__enqueue),
// so any number of workers can share the queue.
import { Logger, parseCronItems, run, type JobHelpers, type Task } from "graphile-worker";
import { mkdir } from "node:fs/promises";
import pg from "pg";
import type { Config } from "./config.ts";
import exportTask from "./tasks/export.ts";
import exportRetentionTask from "./tasks/export_retention.ts";

/** Structured log lines; a pino logger fits this shape. */
export interface Log {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/** What tasks need besides their payload; passed by the worker, not read from the environment. */
export interface TaskContext {
  /** The worker's pool: connects as the database owner. */
  pool: pg.Pool;
  log: Log;
  exportDir: string;
  exportRetentionDays: number;
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

function field(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}

function stderrLine(level: string) {
  return (fields: Record<string, unknown>, message: string) => {
    const pairs = Object.entries(fields).map(([key, value]) => ` ${key}=${field(value)}`).join("");
    process.stderr.write(`${new Date().toISOString()} ${level} ${message}${pairs}\n`);
  };
}

/** One line per event on stderr: time, level, message, then key=value fields. */
export const stderrLog: Log = { info: stderrLine("info"), warn: stderrLine("warn"), error: stderrLine("error") };

/** graphile-worker's own messages, routed into our log. A failed attempt that will be retried is a warning. */
function workerLogger(log: Log): Logger {
  return new Logger(() => (level: string, message: string, meta?: Record<string, unknown>) => {
    const job = meta?.job as { attempts: number; max_attempts: number } | undefined;
    if (level === "error" && meta?.failure && job && job.attempts < job.max_attempts) {
      log.warn({}, message);
    } else if (level === "error") {
      log.error({}, message);
    } else if (level === "warning") {
      log.warn({}, message);
    } else if (level === "info") {
      log.info({}, message);
    }
  });
}

export interface Worker {
  /** Stops taking jobs, lets running ones finish (or aborts them after 5 s so they are retried), closes the pool. */
  stop(): Promise<void>;
  /** Settles when the worker has stopped; rejects if it stopped because of an error. */
  done: Promise<void>;
}

export async function startWorker(config: Config, databaseUrl: string, log: Log): Promise<Worker> {
  await mkdir(config.exportDir, { recursive: true });
  // Per running job: the export's snapshot connection and a short-lived one for
  // progress and state; plus graphile-worker's LISTEN connection and job fetches.
  const pool = new pg.Pool({ connectionString: databaseUrl, max: config.workerConcurrency * 2 + 2 });
  // A connection that drops (database restart) must not crash the process: idle
  // ones are replaced, and a busy one fails its query, so its job is retried.
  pool.on("error", (error) => log.warn({ error: error.message }, "idle worker database connection failed"));
  pool.on("connect", (client) =>
    client.on("error", (error) => log.warn({ error: error.message }, "worker database connection failed")),
  );
  const context: TaskContext = {
    pool,
    log,
    exportDir: config.exportDir,
    exportRetentionDays: config.exportRetentionDays,
  };
  const taskList: Record<string, Task> = Object.fromEntries(
    Object.entries(TASKS).map(([name, task]) => [name, (payload, helpers) => task(payload, helpers, context)]),
  );
  let runner;
  try {
    runner = await run({
      pgPool: pool,
      concurrency: config.workerConcurrency,
      noHandleSignals: true,
      taskList,
      parsedCronItems: parseCronItems(CRON_ITEMS),
      logger: workerLogger(log),
      // Unbatched, graphile-worker does not wait for a job's outcome to be
      // recorded before it reports itself stopped; then closing the pool loses
      // it and the job stays locked for hours. Batches are flushed on stop.
      preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
    });
  } catch (error) {
    await pool.end();
    throw error;
  }
  const done = runner.promise.finally(() => pool.end());
  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= runner.stop().then(() => done);
      return stopping;
    },
    done,
  };
}
