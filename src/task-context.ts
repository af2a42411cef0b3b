// What the worker hands each task of src/tasks/ besides its payload. A module of
// its own, so the tasks and the runner (src/worker.ts) depend on it, not on each other.
import type { JobHelpers } from "graphile-worker";
import type pg from "pg";
import type { ReadReplicas } from "./db/replicas.ts";
import type { Log } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { ExportStorage } from "./storage/index.ts";

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
  /** Read replicas for exports' snapshots (REPLICA_DATABASE_URL); undefined: the primary only. */
  replicas: ReadReplicas | undefined;
  log: Log;
  metrics: Metrics;
  /** EXPORT_DIR, named in the log when writing there fails. */
  exportDir: string;
  /** Where export files go: EXPORT_DIR or S3. */
  storage: ExportStorage;
  exportRetentionDays: number;
  runKeyRetentionDays: number;
  /** The longest a statement of an export may run (its COPY). */
  exportStatementTimeoutSeconds: number;
  /** Logs the failure at error level, counts it and posts an alert (in the background). */
  exportFailedForGood(failure: FailedExport): void;
}

/** Scheduled jobs carry graphile-worker's own `_cron` details and nothing of ours: any object. */
export function assertJobObject(task: string, payload: unknown): void {
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new Error(`The ${task} job's payload must be an object, not ${JSON.stringify(payload)}.`);
  }
}

/** A task of src/tasks/: graphile-worker's task function, plus the context. */
export type ContextTask = (payload: unknown, helpers: JobHelpers, context: TaskContext) => Promise<void>;
