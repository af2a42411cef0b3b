// The job runner: graphile-worker with the tasks of src/tasks/ and the
// retention schedule. Jobs are queued in SQL (see app_private.tg_exports__enqueue),
// so any number of workers can share the queue; heartbeats let them retry the
// jobs of a worker that died (src/heartbeats.ts).
import { EventEmitter } from "node:events";
import { mkdir } from "node:fs/promises";
import { Logger, parseCronItems, run, type Job, type Task, type WorkerEvents } from "graphile-worker";
import { createAlerts, type Alerts } from "./alerts.ts";
import type { Config } from "./config.ts";
import { closePool, resilientPool } from "./db/pool.ts";
import { ReadReplicas } from "./db/replicas.ts";
import { releasedWorker, releaseWorkers, startHeartbeats } from "./heartbeats.ts";
import { LoggedError, type Log } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { FILE_FORMATS } from "./formats.ts";
import { createStorage } from "./storage/index.ts";
import exportTask, { EXPORT_DIR_ERROR_CODES } from "./tasks/export.ts";
import exportRetentionTask from "./tasks/export_retention.ts";
import feedRunTask from "./tasks/feed_run.ts";
import feedScheduleTask from "./tasks/feed_schedule.ts";
import type { ContextTask, TaskContext } from "./task-context.ts";
import runKeyRetentionTask from "./tasks/run_key_retention.ts";
import sqlLoginLimitsTask from "./tasks/sql_login_limits.ts";
import tombstoneRetentionTask from "./tasks/tombstone_retention.ts";

const TASKS: Record<string, ContextTask> = {
  export: exportTask,
  export_retention: exportRetentionTask,
  feed_run: feedRunTask,
  feed_schedule: feedScheduleTask,
  run_key_retention: runKeyRetentionTask,
  sql_login_limits: sqlLoginLimitsTask,
  tombstone_retention: tombstoneRetentionTask,
};

/** Hourly (feeds: every minute); runs on whichever worker claims it first. */
const CRON_ITEMS = [
  { task: "feed_schedule", match: "* * * * *", identifier: "feed_schedule", options: { backfillPeriod: 0 } },
  { task: "export_retention", match: "17 * * * *", identifier: "export_retention", options: { backfillPeriod: 0 } },
  { task: "run_key_retention", match: "47 * * * *", identifier: "run_key_retention", options: { backfillPeriod: 0 } },
  { task: "tombstone_retention", match: "37 * * * *", identifier: "tombstone_retention", options: { backfillPeriod: 0 } },
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
  /**
   * graphile-worker's pool id of the runner taking jobs now: what its jobs have
   * in locked_by, and its heartbeat's key. Undefined while the runner restarts.
   */
  readonly poolId: string | undefined;
  /**
   * Stops taking jobs, lets running ones finish (aborting them after
   * SHUTDOWN_GRACE, so they are retried), signs off and closes the pool.
   */
  stop(): Promise<void>;
  /** Settles once the worker has stopped (after stop()). */
  done: Promise<void>;
}

/** A graphile-worker runner with its heartbeat. */
interface Runner {
  poolId: string;
  stop(): Promise<void>;
  /** Resolves when the runner has stopped, asked to or not (graphile-worker resolves either way). */
  stopped: Promise<void>;
  heartbeats: Heartbeats;
}

type Heartbeats = Awaited<ReturnType<typeof startHeartbeats>>;

/** Restart delays: doubling from the first to the last while starts keep failing. */
const RESTART_DELAY_MS = { first: 1000, max: 10_000 };
/** A runner that lasted this long was healthy: the next restart starts from the first delay again. */
const HEALTHY_RUN_MS = 60_000;

/**
 * Runs graphile-worker until stopped. graphile-worker's runner stops for good
 * when its database connection fails at the wrong moment (a restart, a
 * terminated backend: it cannot record a job's outcome); then this starts a new
 * runner, with backoff while the database is unreachable, and releases the jobs
 * the old runner held, so they run again at once. The process never needs a
 * restart by hand, and /readyz fails (poolId is undefined) in between.
 */
export async function startWorker(
  config: Config,
  databaseUrl: string,
  log: Log,
  options: { metrics?: Metrics } = {},
): Promise<Worker> {
  if (config.exportStorage.kind === "local") await mkdir(config.exportDir, { recursive: true });
  const storage = createStorage(config, log);
  const pool = workerPool(config, databaseUrl, log);
  const metrics = options.metrics ?? createMetrics();
  metrics.watchPool("worker", pool);
  metrics.watchDatabase(pool, config.workerDeadAfterSeconds, log);
  const alerts = createAlerts(config.alertWebhookUrl, log, metrics);
  const replicas = config.replicas.ownerUrls.length > 0
    ? new ReadReplicas(config.replicas.ownerUrls, { ...config.replicas, poolMax: config.workerConcurrency + 1, applicationName: "prompter-worker" }, log, metrics)
    : undefined;
  const context = taskContext(config, { pool, replicas, log, metrics, storage }, alerts);
  const runners = runnerStarter(config, context);
  const stopSignal = createStopSignal();

  const firstRunner = async () => {
    const { rows: kinds } = await pool.query<{ name: string }>("select name from app_public.export_kinds order by name");
    // The feed kinds' one home is their table's check constraint: its quoted words.
    const { rows: feedKinds } = await pool.query<{ name: string }>(
      `select (regexp_matches(pg_get_constraintdef(oid), chr(39) || '([a-z_]+)' || chr(39), 'g'))[1] as name
         from pg_constraint where conrelid = 'app_public.feeds'::regclass and conname = 'feeds_kind_check'`);
    metrics.expectWorkerEvents(kinds.map((kind) => kind.name), EXPORT_DIR_ERROR_CODES, feedKinds.map((kind) => kind.name), FILE_FORMATS);
    return runners.start();
  };
  const first = await firstRunner().catch(async (error) => {
    await replicas?.end();
    await closePool(pool);
    throw error;
  });
  let current: Runner | undefined = first;
  const loginLimits = startSqlLoginLimits(context, config.sqlLoginCheckSeconds);

  const done = (async () => {
    await superviseRunners(first, runners, stopSignal, context, (runner) => (current = runner));
    await loginLimits.stop();
    await alerts.flush();
    await replicas?.end();
    await closePool(pool);
  })();

  return {
    get poolId() {
      return current?.poolId;
    },
    stop() {
      stopSignal.request();
      void current?.stop().catch(() => {});
      return done;
    },
    done,
  };
}

/**
 * The worker's pool. LISTEN and graphile-worker's locking need a session: no
 * transaction-mode pooler. A query that hangs (a lock, an overloaded server)
 * fails after WORKER_STATEMENT_TIMEOUT; exports set their own limit
 * (EXPORT_STATEMENT_TIMEOUT).
 */
function workerPool(config: Config, databaseUrl: string, log: Log) {
  return resilientPool(
    {
      connectionString: config.directDatabaseUrl ?? databaseUrl,
      max: config.workerPoolMax,
      application_name: "prompter-worker",
      connectionTimeoutMillis: config.workerConnectTimeoutSeconds * 1000,
      statement_timeout: config.workerStatementTimeoutSeconds * 1000,
    },
    log,
  );
}

function taskContext(config: Config, parts: Pick<TaskContext, "pool" | "replicas" | "log" | "metrics" | "storage">, alerts: Alerts): TaskContext {
  const { log, metrics } = parts;
  return {
    ...parts,
    exportDir: config.exportDir,
    exportRetentionDays: config.exportRetentionDays,
    runKeyRetentionDays: config.runKeyRetentionDays,
    exportStatementTimeoutSeconds: config.exportStatementTimeoutSeconds,
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
}

interface RunnerStarter {
  start(): Promise<Runner>;
  /**
   * After a pause, releases the jobs of abandoned pools and starts a runner;
   * retried with a growing pause until it works, or until the worker is
   * stopped (then undefined).
   */
  restart(stopSignal: StopSignal): Promise<Runner | undefined>;
  /** The runner that stopped was signed off: its jobs need no releasing. */
  signedOff(poolId: string): void;
  /** The runner that stopped had run this long: a healthy one resets the restart pause. */
  ran(ms: number): void;
}

/** Starts graphile-worker runners on the context's pool, each with its heartbeat. */
function runnerStarter(config: Config, context: TaskContext): RunnerStarter {
  const { pool, log, metrics } = context;
  const taskList: Record<string, Task> = Object.fromEntries(
    Object.entries(TASKS).map(([name, task]) => [name, (payload, helpers) => task(payload, helpers, context)]),
  );
  /** Pools of runners that stopped without signing off: their jobs are released before the next runner starts. */
  const abandoned = new Set<string>();
  let restartDelay = RESTART_DELAY_MS.first;

  async function start(): Promise<Runner> {
    // The pool id is only announced while run() starts.
    const events: WorkerEvents = new EventEmitter();
    let poolId = "";
    events.once("pool:create", ({ workerPool }) => {
      poolId = workerPool.id;
      abandoned.add(poolId);
    });
    const runner = await run({
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
    const stopped = runner.promise.catch((error: Error) => log.warn({ poolId, error: error.message }, "worker runner stopped with an error"));
    let heartbeats: Heartbeats;
    try {
      heartbeats = await startHeartbeats({
        pool,
        poolId,
        intervalSeconds: config.workerHeartbeatSeconds,
        deadAfterSeconds: config.workerDeadAfterSeconds,
        log,
        onDeadWorker: (dead) => {
          metrics.deadWorkers.inc();
          return releasedWorker(context, dead, "worker presumed dead: its jobs are released to be retried");
        },
      });
    } catch (error) {
      await runner.stop().catch(() => {});
      await stopped;
      throw error;
    }
    return { poolId, stop: () => runner.stop(), stopped, heartbeats };
  }

  async function restart(stopSignal: StopSignal): Promise<Runner | undefined> {
    for (;;) {
      if (await stopSignal.wait(restartDelay)) return undefined;
      restartDelay = Math.min(restartDelay * 2, RESTART_DELAY_MS.max);
      try {
        for (const released of await releaseWorkers(pool, [...abandoned])) {
          await releasedWorker(context, released, "worker runner replaced: the jobs its previous runner held are released to be retried");
        }
        abandoned.clear();
        const runner = await start();
        metrics.workerRestarts.inc();
        log.info({ poolId: runner.poolId }, "worker runner restarted");
        return runner;
      } catch (error) {
        log.warn({ error: (error as Error).message, retryInMs: restartDelay }, "could not restart the worker runner; retrying");
      }
    }
  }

  return {
    start,
    restart,
    signedOff: (poolId) => abandoned.delete(poolId),
    ran(ms) {
      if (ms >= HEALTHY_RUN_MS) restartDelay = RESTART_DELAY_MS.first;
    },
  };
}

/**
 * Waits for each runner to stop: on stop() it signs the runner off; otherwise
 * it starts the next one (see RunnerStarter.restart). `onRunner` hears of each
 * change of runner (undefined in between).
 */
async function superviseRunners(
  first: Runner,
  runners: RunnerStarter,
  stopSignal: StopSignal,
  context: TaskContext,
  onRunner: (runner: Runner | undefined) => void,
): Promise<void> {
  const { log } = context;
  let runner: Runner | undefined = first;
  while (runner) {
    const startedAt = Date.now();
    await runner.stopped;
    // Beats went on while running jobs finished, so no one took them meanwhile.
    await runner.heartbeats.stop();
    onRunner(undefined);
    if (stopSignal.requested) {
      const { poolId } = runner;
      await runner.heartbeats.signOff().then(
        () => runners.signedOff(poolId),
        (error: Error) => log.warn({ error: error.message }, "could not sign off the heartbeat"),
      );
      return;
    }
    log.error({ poolId: runner.poolId }, "worker runner stopped unexpectedly (database connection lost?); starting a new one");
    runners.ran(Date.now() - startedAt);
    runner = await runners.restart(stopSignal);
    onRunner(runner);
    if (stopSignal.requested) void runner?.stop().catch(() => {});
  }
}

interface StopSignal {
  readonly requested: boolean;
  request(): void;
  /** Waits `ms`, or less if a stop is requested; true if it was. */
  wait(ms: number): Promise<boolean>;
}

function createStopSignal(): StopSignal {
  let requested = false;
  let wake = () => {};
  return {
    get requested() {
      return requested;
    },
    request() {
      requested = true;
      wake();
    },
    wait: (ms) =>
      new Promise<boolean>((resolve) => {
        if (requested) return resolve(true);
        const timer = setTimeout(() => resolve(requested), ms);
        wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      }),
  };
}

/** Runs the sql_login_limits task every `intervalSeconds`, one run at a time. */
function startSqlLoginLimits(context: TaskContext, intervalSeconds: number): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    running ??= sqlLoginLimitsTask({}, undefined, context)
      .catch((error: Error) => context.log.warn({ error: error.message }, "could not check the SQL logins' limits"))
      .finally(() => (running = undefined));
  }, intervalSeconds * 1000);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
