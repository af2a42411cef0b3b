// Read replicas (PostgreSQL streaming standbys): where exports and dashboard
// reads run when REPLICA_DATABASE_URL / REPLICA_AUTH_DATABASE_URL name some, so
// a long COPY costs the primary nothing. A replica is used only once it has
// replayed the primary's WAL up to the moment the work was asked for, so it
// never shows less than its caller committed; one that is down, lags past
// REPLICA_MAX_WAIT or fails mid-read hands the work to the next, and the last
// resort is always the primary.
import type pg from "pg";
import type { Log } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { closePool, resilientPool } from "./pool.ts";

export interface ReplicaOptions {
  /** How long to wait for a replica to replay up to the work's LSN before trying the next one. */
  maxWaitMs: number;
  /** Replicas whose last replay is further behind than this are skipped without waiting. */
  maxLagSeconds: number;
  /** Each replica pool's size. */
  poolMax: number;
  applicationName: string;
}

interface Replica {
  name: string;
  pool: pg.Pool;
}

/** A connection to a replica that has replayed everything up to the LSN asked for. */
export interface ReplicaConnection {
  replica: string;
  client: pg.PoolClient;
}

const POLL_MS = 20;

/** host:port/database of a URL: how logs and metrics name a replica (never its password). */
export function replicaName(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || "5432"}${parsed.pathname}`;
}

/**
 * Errors after which the same work succeeds elsewhere: the replica is down,
 * restarting or unreachable, or cancelled the read for a recovery conflict
 * (40001 on a standby; hot_standby_feedback and max_standby_streaming_delay make it rarer).
 */
export function isReplicaFault(error: unknown): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === "string" && (/^08/.test(code) || ["57P01", "57P02", "57P03", "40001", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE"].includes(code))) {
    return true;
  }
  return typeof message === "string" && /Connection terminated|timeout exceeded when trying to connect|conflict with recovery/.test(message);
}

export class ReadReplicas {
  private readonly replicas: Replica[];
  private readonly options: ReplicaOptions;
  private readonly log: Log;
  private readonly metrics: Metrics;
  private next = 0;

  constructor(urls: string[], options: ReplicaOptions, log: Log, metrics: Metrics) {
    this.options = options;
    this.log = log;
    this.metrics = metrics;
    this.replicas = urls.map((url) => {
      // A replica that restarts or fails over mid-read must not crash the process.
      const pool = resilientPool({
        connectionString: url,
        max: options.poolMax,
        connectionTimeoutMillis: Math.max(options.maxWaitMs, 1000),
        application_name: options.applicationName,
      }, log);
      return { name: replicaName(url), pool };
    });
    metrics.watchReplicas(() => this.lagSeconds());
  }

  get size(): number {
    return this.replicas.length;
  }

  /**
   * A connection to the first replica (in turn) that has replayed `lsn`, or
   * undefined when none has within REPLICA_MAX_WAIT: the caller then uses the primary.
   */
  async caughtUp(lsn: string, purpose: string): Promise<ReplicaConnection | undefined> {
    const start = this.next++;
    for (let i = 0; i < this.replicas.length; i++) {
      const replica = this.replicas[(start + i) % this.replicas.length];
      try {
        const client = await replica.pool.connect();
        if (await this.replayed(client, lsn)) return { replica: replica.name, client };
        client.release();
        this.fellBack(replica.name, "lagging", purpose);
      } catch (error) {
        this.fellBack(replica.name, "unavailable", purpose, error);
      }
    }
    return undefined;
  }

  /** Records that work meant for a replica went elsewhere, and why. */
  fellBack(replica: string, reason: "lagging" | "unavailable" | "failed", purpose: string, error?: unknown): void {
    this.metrics.replicaFallbacks.inc({ replica, reason });
    this.log.warn({ replica, reason, purpose, error: (error as Error | undefined)?.message }, "replica not used; the work moves on");
  }

  private async replayed(client: pg.PoolClient, lsn: string): Promise<boolean> {
    const deadline = performance.now() + this.options.maxWaitMs;
    for (;;) {
      const { rows } = await client.query<{ replayed: boolean; lag: number | null }>(
        `select coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) as replayed, ${LAG_SECONDS} as lag`,
        [lsn],
      );
      if (rows[0].replayed) return true;
      // A replica far behind will not catch up within the wait: skip it at once.
      if (rows[0].lag !== null && rows[0].lag > this.options.maxLagSeconds) return false;
      if (performance.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  /** Runs `work` on every replica, one after another; a replica that fails is reported, not thrown. */
  async onEach<T>(work: (pool: pg.Pool) => Promise<T>): Promise<{ replica: string; result?: T; error?: Error }[]> {
    const outcomes = [];
    for (const replica of this.replicas) {
      outcomes.push(await work(replica.pool).then((result) => ({ replica: replica.name, result }), (error: Error) => ({ replica: replica.name, error })));
    }
    return outcomes;
  }

  /** Each replica's lag for the metric; undefined for one that does not answer. */
  async lagSeconds(): Promise<Map<string, number | undefined>> {
    const lags = new Map<string, number | undefined>();
    await Promise.all(this.replicas.map(async (replica) => {
      const lag = await replica.pool.query<{ lag: number | null }>(`select ${LAG_SECONDS} as lag`)
        .then((result) => result.rows[0].lag ?? 0, () => undefined);
      lags.set(replica.name, lag);
    }));
    return lags;
  }

  async end(): Promise<void> {
    await Promise.all(this.replicas.map((replica) => closePool(replica.pool)));
  }
}

// Seconds since the last replayed transaction committed on the primary, or 0 when
// the replica has replayed all it received (an idle primary is not a lagging replica).
const LAG_SECONDS = `case when pg_last_wal_receive_lsn() is not distinct from pg_last_wal_replay_lsn() then 0
  else extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 end`;
