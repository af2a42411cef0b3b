// Dead-worker detection. graphile-worker only gives up on a job's lock after
// four hours, so a worker that is SIGKILLed (or whose host dies) would hold its
// export that long. Instead each runner records a heartbeat under its
// graphile-worker pool id, and on each beat whichever worker gets there first
// releases the jobs of pools silent for WORKER_DEAD_AFTER, so another worker
// retries them within a minute. A runner that stops inside a live process (its
// database connection failed) is replaced by one with a new pool id, and the
// process releases the old pool's jobs itself (releaseWorkers).
import { hostname } from "node:os";
import type pg from "pg";
import type { Log } from "./log.ts";
import type { ReadinessCheck } from "./server/index.ts";
import type { TaskContext } from "./task-context.ts";

/** A released worker pool, as app_private.release_workers reports it (bigints as strings). */
export interface DeadWorker {
  pool_id: string;
  hostname: string | null;
  pid: number | null;
  last_seen: Date | null;
  released_jobs: string[];
  /** Exports whose job was on its last attempt: failed rather than retried. */
  failed_exports: string[];
}

export async function startHeartbeats(options: {
  pool: pg.Pool;
  /** graphile-worker's pool id: the value of locked_by on the jobs it holds. */
  poolId: string;
  intervalSeconds: number;
  deadAfterSeconds: number;
  log: Log;
  onDeadWorker(dead: DeadWorker): Promise<void>;
}): Promise<{ stop(): Promise<void>; signOff(): Promise<void> }> {
  const { pool, poolId, log } = options;
  const beat = async () => {
    await pool.query("select app_private.worker_heartbeat($1, $2, $3)", [poolId, hostname(), process.pid]);
    const { rows } = await pool.query<DeadWorker>(
      "select * from app_private.release_dead_workers(make_interval(secs => $1))",
      [options.deadAfterSeconds],
    );
    for (const dead of rows) await options.onDeadWorker(dead);
  };
  await beat();
  let beating: Promise<void> | undefined;
  const timer = setInterval(() => {
    beating ??= beat()
      .catch((error: Error) => log.warn({ error: error.message }, "heartbeat failed; other workers may presume this one dead"))
      .finally(() => (beating = undefined));
  }, options.intervalSeconds * 1000);
  return {
    /** Stops beating (after a beat in flight). */
    async stop() {
      clearInterval(timer);
      await beating;
    },
    /** Signs off after a clean stop (its jobs are finished or released), so no one waits for the pool to go silent. */
    async signOff() {
      await pool.query("select app_private.worker_stopped($1)", [poolId]);
    },
  };
}

/** Releases the jobs of pools known to have stopped, and drops their heartbeats. */
export async function releaseWorkers(pool: pg.Pool, poolIds: string[]): Promise<DeadWorker[]> {
  const { rows } = await pool.query<DeadWorker>("select * from app_private.release_workers($1)", [poolIds]);
  return rows;
}

/**
 * For /readyz: a worker is running if its heartbeat is recent. With
 * `currentPoolId`, that worker is this process's runner: none (undefined)
 * while it restarts.
 */
export function workerAlive(deadAfterSeconds: number, currentPoolId?: () => string | undefined): ReadinessCheck {
  return async (client) => {
    const poolId = currentPoolId?.();
    if (currentPoolId && poolId === undefined) return false;
    const { rows } = await client.query<{ alive: boolean }>(
      "select exists (select from app_hidden.gateway_live_workers(make_interval(secs => $1)) w (pool_id) where $2::text is null or w.pool_id = $2) as alive",
      [deadAfterSeconds, poolId ?? null],
    );
    return rows[0].alive;
  };
}

/** Logs a released pool, and fails for good the exports whose last attempt it held. */
export async function releasedWorker(context: TaskContext, dead: DeadWorker, message: string): Promise<void> {
  context.log.warn(
    {
      deadPoolId: dead.pool_id,
      deadHostname: dead.hostname,
      deadPid: dead.pid,
      lastSeen: dead.last_seen,
      releasedJobs: dead.released_jobs.map(Number),
    },
    message,
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
