// The gateway: authenticates, hands the caller's claims to PostgreSQL, maps
// errors and serves export files. Business rules stay in SQL.
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import express, { type Response } from "express";
import pg from "pg";
import type { Config } from "../config.ts";
import { migrationsAreCurrent } from "../db/migrate.ts";
import { closePool } from "../db/pool.ts";
import { ReadReplicas } from "../db/replicas.ts";
import type { Log } from "../log.ts";
import { createMetrics, metricsEndpoint, type Metrics } from "../metrics.ts";
import { createStorage } from "../storage/index.ts";
import { authenticate } from "./auth.ts";
import { errorHandler, GRAPHQL_PATH, HttpError, sendError, SHUTTING_DOWN } from "./errors.ts";
import { exportEvents } from "./export-events.ts";
import { graphqlAccept, graphqlResponses } from "./graphql-answers.ts";
import { refuseOtherMethods } from "./methods.ts";
import { gatewayPool } from "./pool.ts";
import { callerConcurrency } from "./admission.ts";
import { capConnections, connectionTimeouts } from "./connections.ts";
import { requestBodies } from "./request-body.ts";
import { DeclaredRoutes, rememberMountPath, requestLog } from "./request-log.ts";
import { feedRoutes } from "./feeds-rest.ts";
import { restRoutes } from "./rest.ts";
import { uiRoutes } from "./ui.ts";

/** One more condition for /readyz (say, that a worker is running); true when met. */
export type ReadinessCheck = (client: pg.PoolClient) => Promise<boolean>;

export interface Gateway {
  port: number;
  /**
   * Stops accepting connections and lets in-flight requests finish (requests
   * waiting for an export answer with its state now); after SHUTDOWN_GRACE the
   * connections left are closed. Then closes the pool.
   */
  close(): Promise<void>;
}

/** `authenticatorUrl`: the gateway's only login, which may only become the API roles. */
export async function startGateway(
  config: Config,
  authenticatorUrl: string,
  log: Log,
  options: { readinessChecks?: Record<string, ReadinessCheck>; metrics?: Metrics } = {},
): Promise<Gateway> {
  // Grafast reads its mode once, when first imported.
  process.env.GRAPHILE_ENV = config.graphileEnv;
  const { createPostGraphile } = await import("./graphql.ts");
  const { grafserv } = await import("postgraphile/grafserv/express/v4");

  const metrics = options.metrics ?? createMetrics();
  const pool = gatewayPool(config, authenticatorUrl, metrics, log);
  // The backends of connections in use, whose queries shutdown cancels when its grace is over.
  const checkedOut = new Set<number>();
  pool.on("acquire", (client) => checkedOut.add(processIdOf(client)));
  pool.on("release", (_error, client) => checkedOut.delete(processIdOf(client)));
  metrics.watchPool("gateway", pool);
  metrics.watchDatabase(pool, config.workerDeadAfterSeconds, log);
  const replicas = config.replicas.authUrls.length > 0
    ? new ReadReplicas(config.replicas.authUrls, { ...config.replicas, poolMax: config.poolMax, applicationName: "prompter-gateway" }, log, metrics)
    : undefined;
  // LISTEN needs a session of its own: not through a transaction-mode pooler.
  const events = exportEvents(config.authDirectDatabaseUrl ?? authenticatorUrl, log);
  const pgl = createPostGraphile(config, pool, log);
  await pgl.getSchema(); // fail at start, not on the first request

  const app = express();
  app.disable("x-powered-by");
  // req.ip is the client address everything keyed by address uses: sign-in
  // throttling (prompter.client_address), anonymous admission and pacing.
  app.set("trust proxy", config.trustProxy);
  const declaredRoutes = new DeclaredRoutes();
  app.use(requestLog(log, metrics, declaredRoutes));
  let closing = false;
  const inFlight = new Map<Response, { method: string; path: string; started: number }>();
  app.use((req, res, next) => {
    // A request on a kept-alive connection during shutdown is answered, and the client told to reconnect elsewhere.
    if (closing) res.set("Connection", "close");
    inFlight.set(res, { method: req.method, path: req.originalUrl.split("?")[0], started: performance.now() });
    res.once("close", () => inFlight.delete(res));
    next();
  });
  const healthz = app.route("/healthz").get((_req, res) => {
    res.json({ success: true, status: "ok" });
  });
  refuseOtherMethods(healthz);
  const readyz = app.route("/readyz").get(async (_req, res) => {
    const checks = await readiness(pool, options.readinessChecks ?? {});
    const failing = Object.entries(checks).filter(([, state]) => state !== "ok");
    if (!failing.length) {
      res.json({ success: true, status: "ready", checks });
      return;
    }
    res.status(503).json({
      success: false,
      error: { code: "NOT_READY", message: `Not ready: ${failing.map(([name, state]) => `${name} ${state}`).join(", ")}.` },
      checks,
    });
  });
  refuseOtherMethods(readyz);
  // Prometheus authenticates with METRICS_TOKEN, not a user's token.
  refuseOtherMethods(app.route("/metrics").get(metricsEndpoint(metrics, config.metricsToken)));
  if (!config.metricsToken && config.production) log.warn({}, "METRICS_TOKEN is not set: anyone who reaches /metrics can read it");
  // The REST API's contract (OpenAPI 3.1), public like the API's shape; read once.
  const openApi = await readFile(new URL("./openapi.json", import.meta.url), "utf8");
  refuseOtherMethods(app.route("/api/openapi.json").get((_req, res) => {
    res.type("application/json").set("Cache-Control", "no-cache").send(openApi);
  }));
  app.use(await uiRoutes());
  app.use(authenticate(config));
  // The body is in before the request is admitted: a slow one holds no slot.
  app.use(requestBodies(config.connectionLimits.bodyTimeoutSeconds));
  app.use(callerConcurrency(config.callerLimits, metrics));
  const storage = createStorage(config, log);
  const rest = restRoutes(config, pool, events, storage, replicas);
  const feeds = feedRoutes(config, pool, events, storage);
  declaredRoutes.add("/api", rest);
  declaredRoutes.add("/api", feeds);
  app.use("/api", rememberMountPath, rest);
  app.use("/api", rememberMountPath, feeds);

  app.use(GRAPHQL_PATH, graphqlAccept, graphqlResponses(config.graphqlLimits.maxResponseBytes));
  const server = createServer(connectionTimeouts(config.connectionLimits), app);
  const trustFunction = app.get("trust proxy fn") as (address: string, hop: number) => boolean;
  capConnections(server, config.connectionLimits, (address) => trustFunction(address, 0), metrics, log);
  // grafserv answers other methods with 405 but no Allow, which RFC 9110 requires there (and allows anywhere).
  app.use(GRAPHQL_PATH, (_req, res, next) => {
    res.set("Allow", "GET, POST");
    next();
  });
  await pgl.createServ(grafserv).addTo(app, server, false);
  app.use((req) => {
    throw new HttpError(404, "NOT_FOUND", `No endpoint ${req.method} ${req.path}.`);
  });
  app.use(errorHandler);

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  log.info(
    { port, graphiql: !config.production },
    `prompter gateway listening on http://${config.host}:${port} (GraphQL at /graphql${config.production ? "" : ", Ruru at /graphiql"})`,
  );

  return {
    port,
    async close() {
      closing = true;
      const closed = new Promise((resolve) => server.close(resolve));
      // Kept-alive connections close as soon as their last request is answered.
      const sweep = setInterval(() => server.closeIdleConnections(), 100);
      const cutOff = setTimeout(() => {
        void cutOffStuckRequests().finally(() => server.closeAllConnections());
      }, config.shutdownGraceSeconds * 1000);
      // Requests still running when the grace is over: their queries are
      // cancelled in PostgreSQL (so they answer 503 SHUTTING_DOWN and give their
      // connections back), and any that has not answered a moment later is answered so.
      async function cutOffStuckRequests() {
        log.warn({ requests: inFlight.size, queries: checkedOut.size }, "shutdown grace is over: cancelling the requests left");
        for (const [res, request] of inFlight) {
          log.warn({ requestId: res.locals.requestId, ...request, durationMs: Math.round(performance.now() - request.started) }, "request cut off by shutdown");
        }
        await cancelQueries(authenticatorUrl, [...checkedOut], log);
        await delay(CANCEL_ANSWER_MS);
        for (const res of inFlight.keys()) if (!res.headersSent) sendError(res, SHUTTING_DOWN);
      }
      try {
        await events.close();
        await closed;
      } finally {
        clearInterval(sweep);
        clearTimeout(cutOff);
        try {
          await pgl.release();
        } finally {
          // A connection never given back (its server gone silent) must not keep the process alive.
          await Promise.race([Promise.all([closePool(pool), replicas?.end()]), delay(CANCEL_ANSWER_MS)]);
        }
      }
    },
  };
}

/** How long requests whose queries shutdown cancelled get to answer (and the pool to close). */
const CANCEL_ANSWER_MS = 1000;
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const processIdOf = (client: pg.PoolClient) => (client as pg.PoolClient & { processID: number }).processID;

/** Cancels the running queries of these backends, over a connection of its own (the pool may be full). */
async function cancelQueries(databaseUrl: string, pids: number[], log: Log): Promise<void> {
  if (!pids.length) return;
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: CANCEL_ANSWER_MS });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("select pg_cancel_backend(pid) from unnest($1::int[]) pid", [pids]);
  } catch (error) {
    log.warn({ error: (error as Error).message }, "could not cancel the queries of requests cut off by shutdown");
  } finally {
    await client.end().catch(() => {});
  }
}

async function readiness(pool: pg.Pool, extra: Record<string, ReadinessCheck>): Promise<Record<string, string>> {
  const checks: Record<string, string> = { database: "unreachable", migrations: "unknown" };
  for (const name of Object.keys(extra)) checks[name] = "unknown";
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch {
    return checks;
  }
  let broken: Error | undefined;
  try {
    await client.query("select 1");
    checks.database = "ok";
    checks.migrations = (await migrationsAreCurrent(client)) ? "ok" : "pending";
    for (const [name, check] of Object.entries(extra)) checks[name] = (await check(client)) ? "ok" : "failing";
  } catch (error) {
    broken = error as Error;
  } finally {
    client.release(broken);
  }
  return checks;
}
