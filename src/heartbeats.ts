// Dead-worker detection. graphile-worker only gives up on a job's lock after
// four hours, so a worker that is SIGKILLed (or whose host dies) would hold its
// export that long. Instead each worker records a heartbeat, and on each beat
// whichever worker gets there first releases the jobs of workers silent for
// WORKER_DEAD_AFTER, so another worker retries them within a minute.
import { hostname } from "node:os";
import type pg from "pg";
import type { Log } from "./log.ts";
import type { ReadinessCheck } from "./server/index.ts";

/** A worker pool found silent, as app_private.release_dead_workers reports it (bigints as strings). */
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
}): Promise<{ stop(): Promise<void> }> {
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
    /** Stops beating and signs off, so no one waits for this worker to go silent. */
    async stop() {
      clearInterval(timer);
      await beating;
      await pool.query("select app_private.worker_stopped($1)", [poolId]);
    },
  };
}

/** For /readyz: a worker is running (this process's, when `poolId` is given) if its heartbeat is recent. */
export function workerAlive(deadAfterSeconds: number, poolId?: string): ReadinessCheck {
  return async (client) => {
    const { rows } = await client.query<{ alive: boolean }>(
      "select exists (select from app_hidden.gateway_live_workers(make_interval(secs => $1)) w (pool_id) where $2::text is null or w.pool_id = $2) as alive",
      [deadAfterSeconds, poolId ?? null],
    );
    return rows[0].alive;
  };
}
