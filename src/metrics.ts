// Prometheus metrics (prom-client), one registry per process: `prompter start`
// serves the gateway's and the worker's from the same /metrics.
//
// Counters and histograms count what this process did (HTTP requests, export
// attempts). What is true of the whole deployment (exports by status, the job
// queue, live workers) is read from the database at scrape time, so every
// process reports the same values: aggregate those with max(), not sum().
// Export requests are counted that way too, from app_public.exports: requests
// arrive through GraphQL, REST, the CLI and plain SQL, and only the table sees
// them all.
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type pg from "pg";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Log } from "./log.ts";

/** Why the worker cancels a SQL login's statement or ends its session (app_private.enforce_sql_login_limits). */
const SQL_LOGIN_LIMIT_REASONS = ["statement_timeout", "idle_in_transaction_timeout", "advisory_lock"];

const SECONDS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
const ROWS_BUCKETS = [0, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];
const BYTES_BUCKETS = [1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000, 10_000_000_000];

interface DatabaseState {
  exports: { kind: string; status: string; count: number }[];
  queue: { task: string; ready: number; scheduled: number; running: number; failed: number; oldest_ready_seconds: number }[];
  liveWorkers: number;
}

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // Only counters may end in _total (promtool check metrics refuses these gauges);
  // each is the sum of the by-type gauge of the same name without the suffix.
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
    registry.removeSingleMetric(name);
  }
  const registers = [registry];
  const pools = new Map<string, pg.Pool>();
  let readState: (() => Promise<DatabaseState | undefined>) | undefined;
  let readReplicaLags: (() => Promise<Map<string, number | undefined>>) | undefined;

  const poolGauge = (name: string, help: string, read: (pool: pg.Pool) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["pool"],
      registers,
      collect() {
        for (const [label, pool] of pools) this.set({ pool: label }, read(pool));
      },
    });
  poolGauge("prompter_db_pool_connections", "Open connections of the pool.", (pool) => pool.totalCount);
  poolGauge("prompter_db_pool_idle_connections", "Open connections of the pool that are idle.", (pool) => pool.idleCount);
  poolGauge("prompter_db_pool_waiting_requests", "Requests waiting for a connection of the pool.", (pool) => pool.waitingCount);
  poolGauge("prompter_db_pool_max_connections", "The most connections the pool opens.", (pool) => pool.options.max);

  // Each gauge below collects on its own; they share one read of the database per scrape.
  const databaseGauge = <T extends string>(name: string, help: string, labelNames: T[], fill: (gauge: Gauge<T>, state: DatabaseState) => void) =>
    new Gauge<T>({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        this.reset();
        const state = await readState?.();
        if (state) fill(this, state);
      },
    });
  databaseGauge("prompter_exports", "Exports in app_public.exports (kept EXPORT_RETENTION_DAYS) by kind and status, however they were requested.",
    ["kind", "status"], (gauge, state) => {
      for (const row of state.exports) gauge.set({ kind: row.kind, status: row.status }, row.count);
    });
  databaseGauge("prompter_queue_jobs", "Jobs in the graphile-worker queue: ready to run, scheduled (a retry's backoff), running, or failed for good.",
    ["task", "state"], (gauge, state) => {
      for (const row of state.queue) {
        for (const jobState of ["ready", "scheduled", "running", "failed"] as const) gauge.set({ task: row.task, state: jobState }, row[jobState]);
      }
    });
  databaseGauge("prompter_queue_oldest_ready_job_age_seconds", "How long the oldest job that could run has waited for a worker (0 when none waits).",
    ["task"], (gauge, state) => {
      for (const row of state.queue) gauge.set({ task: row.task }, row.oldest_ready_seconds);
    });
  databaseGauge("prompter_workers_alive", "Worker processes whose heartbeat is recent.", [], (gauge, state) => gauge.set(state.liveWorkers));

  new Gauge({
    name: "prompter_replica_lag_seconds",
    help: "How far each read replica's replay is behind the primary (0 when it has replayed all it received); absent while a replica does not answer.",
    labelNames: ["replica"],
    registers,
    async collect() {
      this.reset();
      for (const [replica, lag] of (await readReplicaLags?.()) ?? []) if (lag !== undefined) this.set({ replica }, lag);
    },
  });

  const kind = ["kind"] as const;
  return {
    registry,
    httpRequestDuration: new Histogram({
      name: "prompter_http_request_duration_seconds",
      help: "HTTP requests to the gateway by method, route and status.",
      labelNames: ["method", "route", "status"] as const,
      registers,
    }),
    exportsSucceeded: new Counter({ name: "prompter_exports_succeeded_total", help: "Exports written by this process.", labelNames: kind, registers }),
    exportsFailed: new Counter({ name: "prompter_exports_failed_total", help: "Exports that failed for good (no attempt left).", labelNames: kind, registers }),
    exportAttemptsFailed: new Counter({
      name: "prompter_export_attempts_failed_total",
      help: "Export attempts that failed and will be retried.",
      labelNames: kind,
      registers,
    }),
    exportDuration: new Histogram({ name: "prompter_export_duration_seconds", help: "Time to write an export.", labelNames: kind, buckets: SECONDS_BUCKETS, registers }),
    exportRows: new Histogram({ name: "prompter_export_rows", help: "Rows per export.", labelNames: kind, buckets: ROWS_BUCKETS, registers }),
    exportBytes: new Histogram({ name: "prompter_export_bytes", help: "Bytes per export file.", labelNames: kind, buckets: BYTES_BUCKETS, registers }),
    feedRunsSucceeded: new Counter({ name: "prompter_feed_runs_succeeded_total", help: "Feed runs written by this process.", labelNames: ["kind", "format"], registers }),
    feedRunAttemptsFailed: new Counter({
      name: "prompter_feed_run_attempts_failed_total",
      help: "Feed run attempts that failed (retried, or with the feed's next run when none is left).",
      labelNames: ["kind", "format"],
      registers,
    }),
    feedRunDuration: new Histogram({ name: "prompter_feed_run_duration_seconds", help: "Time to write a feed run.", labelNames: ["kind", "format"], buckets: SECONDS_BUCKETS, registers }),
    feedRunRows: new Histogram({ name: "prompter_feed_run_rows", help: "Rows per feed run (upserts and deletions).", labelNames: ["kind", "format"], buckets: ROWS_BUCKETS, registers }),
    gatewayBusy: new Counter({
      name: "prompter_gateway_busy_total",
      help: "Requests answered 503 SERVER_BUSY: no database connection free within PG_POOL_WAIT, or PG_POOL_MAX_WAITING already waiting.",
      registers,
    }),
    callerLimited: new Counter({
      name: "prompter_gateway_caller_limited_total",
      help: "Requests answered 429 TOO_MANY_CONCURRENT_REQUESTS: their caller had CALLER_MAX_CONCURRENT in flight already.",
      registers,
    }),
    connectionsRefused: new Counter({
      name: "prompter_gateway_connections_refused_total",
      help: "Client connections closed on arrival: MAX_CONNECTIONS open already (reason total), or MAX_CONNECTIONS_PER_ADDRESS from its address (reason address).",
      labelNames: ["reason"] as const,
      registers,
    }),
    sqlLoginCancellations: new Counter({
      name: "prompter_sql_login_cancellations_total",
      help: "Statements cancelled and sessions ended by the worker because a SQL login went past its configured limits, by reason.",
      labelNames: ["reason"] as const,
      registers,
    }),
    deadWorkers: new Counter({
      name: "prompter_dead_workers_total",
      help: "Worker processes this process found silent and whose jobs it released.",
      registers,
    }),
    workerRestarts: new Counter({
      name: "prompter_worker_restarts_total",
      help: "Worker runners started again in this process after one stopped on a database failure.",
      registers,
    }),
    exportDirFailures: new Counter({
      name: "prompter_export_dir_failures_total",
      help: "Export attempts that could not write to EXPORT_DIR, by error code (ENOSPC: disk full, EROFS, EACCES...).",
      labelNames: ["code"] as const,
      registers,
    }),
    alertDeliveries: new Counter({
      name: "prompter_alert_deliveries_total",
      help: "Alerts posted to ALERT_WEBHOOK_URL, by outcome (delivered, or failed after every retry).",
      labelNames: ["outcome"] as const,
      registers,
    }),
    replicaFallbacks: new Counter({
      name: "prompter_replica_fallbacks_total",
      help: "Work meant for a read replica that moved to another replica or the primary, by replica and reason (lagging, unavailable, failed mid-read).",
      labelNames: ["replica", "reason"] as const,
      registers,
    }),

    /**
     * Zero series for the worker's counters and histograms, by the label
     * values they can have, so each is exported from the start, not from its
     * first event (a rate() needs the 0 before the 1).
     */
    expectWorkerEvents(exportKinds: string[], exportDirErrorCodes: string[], feedKinds: string[], feedFormats: readonly string[]): void {
      for (const kind of feedKinds) {
        for (const format of feedFormats) {
          for (const counter of [this.feedRunsSucceeded, this.feedRunAttemptsFailed]) counter.inc({ kind, format }, 0);
          for (const histogram of [this.feedRunDuration, this.feedRunRows]) histogram.zero({ kind, format });
        }
      }
      for (const kind of exportKinds) {
        for (const counter of [this.exportsSucceeded, this.exportsFailed, this.exportAttemptsFailed]) counter.inc({ kind }, 0);
        for (const histogram of [this.exportDuration, this.exportRows, this.exportBytes]) histogram.zero({ kind });
      }
      for (const code of exportDirErrorCodes) this.exportDirFailures.inc({ code }, 0);
      for (const outcome of ["delivered", "failed"]) this.alertDeliveries.inc({ outcome }, 0);
      for (const reason of SQL_LOGIN_LIMIT_REASONS) this.sqlLoginCancellations.inc({ reason }, 0);
    },

    /** Reports the pool's connections as pool="<name>". */
    watchPool(name: string, pool: pg.Pool): void {
      pools.set(name, pool);
    },

    /** Reads the replicas' lag at scrape time. */
    watchReplicas(read: () => Promise<Map<string, number | undefined>>): void {
      readReplicaLags = read;
    },

    /** Reads the deployment-wide gauges through this pool (the first one given; one read per scrape). */
    watchDatabase(pool: pg.Pool, deadAfterSeconds: number, log: Log): void {
      readState ??= sharedWhileRunning(() =>
        databaseState(pool, deadAfterSeconds).catch((error: Error) => {
          log.warn({ error: error.message }, "metrics: could not read the database; its gauges are left out of this scrape");
          return undefined;
        }),
      );
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Calls made while a call runs share its result. */
function sharedWhileRunning<T>(read: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () => (running ??= read().finally(() => (running = undefined)));
}

async function databaseState(pool: pg.Pool, deadAfterSeconds: number): Promise<DatabaseState> {
  const client = await pool.connect();
  try {
    const { rows: exports } = await client.query<DatabaseState["exports"][number]>("select * from app_hidden.gateway_export_counts()");
    const { rows: queue } = await client.query<DatabaseState["queue"][number]>("select * from app_hidden.gateway_job_queue()");
    const {
      rows: [{ count: liveWorkers }],
    } = await client.query<{ count: number }>("select count(*)::int as count from app_hidden.gateway_live_workers(make_interval(secs => $1))", [
      deadAfterSeconds,
    ]);
    return { exports, queue, liveWorkers };
  } finally {
    client.release();
  }
}

/**
 * GET /metrics in Prometheus' text format; with a token, only for
 * `Authorization: Bearer <token>`. Serves node's http and express alike.
 */
export function metricsEndpoint(metrics: Metrics, token: string | undefined) {
  // Compared as digests, so the comparison takes the same time whatever the length.
  const digest = (value: string) => createHash("sha256").update(value).digest();
  const expected = token === undefined ? undefined : digest(`Bearer ${token}`);
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (expected && !timingSafeEqual(digest(req.headers.authorization ?? ""), expected)) {
      res.writeHead(401, { "content-type": "application/json; charset=utf-8", "www-authenticate": 'Bearer realm="metrics"' });
      res.end(JSON.stringify({ success: false, error: { code: "METRICS_TOKEN_REQUIRED", message: "Send Authorization: Bearer <METRICS_TOKEN>." } }));
      return;
    }
    const body = await metrics.registry.metrics();
    res.writeHead(200, { "content-type": metrics.registry.contentType, "cache-control": "no-store" });
    res.end(body);
  };
}

/** A listener serving only GET /metrics, for processes without the gateway (`prompter worker`). */
export async function serveMetrics(
  metrics: Metrics,
  options: { host: string; port: number; token: string | undefined },
  log: Log,
): Promise<{ port: number; close(): Promise<void> }> {
  const endpoint = metricsEndpoint(metrics, options.token);
  const server = createServer((req, res) => {
    if (req.method !== "GET" || new URL(req.url ?? "/", "http://localhost").pathname !== "/metrics") {
      res.writeHead(404, { "content-type": "application/json; charset=utf-8" });
      res.end(JSON.stringify({ success: false, error: { code: "NOT_FOUND", message: "Only GET /metrics is served here." } }));
      return;
    }
    endpoint(req, res).catch((error: Error) => {
      log.error({ err: error }, "metrics: scrape failed");
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  log.info({ port }, `metrics listening on http://${options.host}:${port}/metrics`);
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
