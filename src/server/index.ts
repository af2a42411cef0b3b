// The gateway: authenticates, hands the caller's claims to PostgreSQL, maps
// errors and serves export files. Business rules stay in SQL.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import pg from "pg";
import type { Config } from "../config.ts";
import { migrationsAreCurrent } from "../db/migrate.ts";
import { authenticate } from "./auth.ts";
import { errorHandler, HttpError, MAX_BODY_BYTES } from "./errors.ts";
import { exportEvents } from "./export-events.ts";
import { restRoutes } from "./rest.ts";
import { uiRoutes } from "./ui.ts";

/** One more condition for /readyz (say, that a worker is running); true when met. */
export type ReadinessCheck = (client: pg.PoolClient) => Promise<boolean>;

export interface Gateway {
  port: number;
  close(): Promise<void>;
}

export async function startGateway(
  config: Config,
  databaseUrl: string,
  log: (message: string) => void,
  options: { readinessChecks?: Record<string, ReadinessCheck> } = {},
): Promise<Gateway> {
  // Grafast reads its mode once, when first imported.
  process.env.GRAPHILE_ENV = config.graphileEnv;
  const { createPostGraphile } = await import("./graphql.ts");
  const { grafserv } = await import("postgraphile/grafserv/express/v4");

  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: config.poolMax,
    connectionTimeoutMillis: 5000,
    application_name: "prompter-gateway",
  });
  // Idle clients whose server went away report here; the pool replaces them.
  pool.on("error", (error) => log(`gateway pool: ${error.message}`));
  const events = exportEvents(databaseUrl, log);
  const pgl = createPostGraphile(config, pool);
  await pgl.getSchema(); // fail at start, not on the first request

  const app = express();
  app.disable("x-powered-by");
  app.get("/healthz", (_req, res) => {
    res.json({ success: true, status: "ok" });
  });
  app.get("/readyz", async (_req, res) => {
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
  app.use(await uiRoutes());
  app.use(authenticate(config));
  app.use(express.json({ limit: MAX_BODY_BYTES }));
  app.use("/api", restRoutes(config, pool, events));

  const server = createServer(app);
  await pgl.createServ(grafserv).addTo(app, server, false);
  app.use((req) => {
    throw new HttpError(404, "NOT_FOUND", `No endpoint ${req.method} ${req.path}.`);
  });
  app.use(errorHandler(log));

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  log(`prompter gateway listening on http://${config.host}:${port} (GraphQL at /graphql${config.production ? "" : ", Ruru at /graphiql"})`);

  return {
    port,
    async close() {
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeIdleConnections();
      await events.close();
      await closed;
      await pgl.release();
      await pool.end();
    },
  };
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
