// /healthz and /readyz, the gateway while its database is down and after it is
// back, and the production switches (no Ruru, no start without a strong secret).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import type { Log } from "../../src/log.ts";
import { waitUntil } from "../exports/support.ts";
import { startGateway } from "../../src/server/index.ts";
import { asSuperuser, createUser, useTestDatabase } from "../support/db.ts";
import { graphql, signTestToken, startServer, TEST_JWT_SECRET, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
let token: string;

// A worker's heartbeat, as `prompter worker` records it; it counts as recent for an hour here.
const heartbeat = () => db.pool.query("select app_private.worker_heartbeat('pool-health-test', 'test-host', 1)");

beforeAll(async () => {
  token = signTestToken(await createUser(db.pool));
  await heartbeat();
  server = await startServer({ databaseUrl: db.url, env: { WORKER_DEAD_AFTER: "1h" } });
});
afterAll(() => server?.stop());

async function get(path: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${server.baseUrl}${path}`, { headers });
  return { status: response.status, body: await response.json() };
}

/** What /readyz answers when a check fails. */
function notReady(message: string, checks: Record<string, string>) {
  return { status: 503, body: { success: false, error: { code: "NOT_READY", message }, checks } };
}

describe("/healthz and /readyz", () => {
  it("are ready when the database answers, every migration is applied and a worker is alive", async () => {
    expect(await get("/healthz")).toEqual({ status: 200, body: { success: true, status: "ok" } });
    expect(await get("/readyz")).toEqual({
      status: 200,
      body: { success: true, status: "ready", checks: { database: "ok", migrations: "ok", worker: "ok" } },
    });
  });

  it("/readyz fails while no worker has sent a heartbeat within WORKER_DEAD_AFTER", async () => {
    await db.pool.query("update app_private.worker_heartbeats set last_seen = now() - interval '61 minutes'");
    try {
      expect(await get("/readyz")).toEqual(notReady("Not ready: worker failing.", { database: "ok", migrations: "ok", worker: "failing" }));
    } finally {
      await heartbeat();
    }
    expect((await get("/readyz")).status).toBe(200);
  });

  it("/readyz fails while a committed migration is not applied", async () => {
    const { rows } = await db.pool.query("delete from graphile_migrate.migrations returning *");
    try {
      expect(await get("/readyz")).toEqual(notReady("Not ready: migrations pending.", { database: "ok", migrations: "pending", worker: "ok" }));
    } finally {
      for (const row of rows) {
        await db.pool.query("insert into graphile_migrate.migrations select * from json_populate_record(null::graphile_migrate.migrations, $1)", [row]);
      }
    }
    expect((await get("/readyz")).status).toBe(200);
  });

  it("/readyz fails while the database is unavailable and recovers after; auth still answers first", async () => {
    await asSuperuser(async (client) => {
      await client.query(`alter database ${db.name} allow_connections false`);
      try {
        await client.query(
          "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and application_name like 'prompter-gateway%'",
          [db.name]);
        expect(await get("/readyz")).toEqual(notReady(
          "Not ready: database unreachable, migrations unknown, worker unknown.",
          { database: "unreachable", migrations: "unknown", worker: "unknown" },
        ));
        expect((await get("/healthz")).status).toBe(200);
        // Tokens are checked before any SQL: a forged one is refused even now.
        expect(await get("/api/exports", { authorization: `Bearer ${signTestToken(1, { secret: "some-other-secret-0123456789abcdef" })}` }))
          .toMatchObject({ status: 401, body: { error: { code: "INVALID_TOKEN" } } });
        const failing = await get("/api/exports", { authorization: `Bearer ${token}` });
        expect(failing).toMatchObject({ status: 500, body: { success: false, error: { code: "INTERNAL" } } });
        expect(JSON.stringify(failing.body)).not.toMatch(/accepting connections|prompter_test/);
        // What went wrong is in the request's log line, under the id the client was given.
        const errorId = /\(error id ([0-9a-f]+)\)/.exec(failing.body.error.message)![1];
        const line = await waitUntil(
          async () => server.logLines().find((candidate) => candidate.msg === "request" && candidate.errorId === errorId),
          Boolean,
          "the failed request is logged",
        );
        // It fails in the route's transaction, which begins with the session check.
        expect(line).toMatchObject({ level: "error", status: 500, route: "/api/exports", path: "/api/exports", err: { message: expect.stringContaining("not currently accepting connections") } });
      } finally {
        await client.query(`alter database ${db.name} allow_connections true`);
      }
    });
    expect((await get("/readyz")).status).toBe(200);
    expect(await graphql(server, "{ allPrompts { totalCount } }", {}, token)).toEqual({ status: 200, data: { allPrompts: { totalCount: 0 } } });
  });
});

describe("readiness checks added by the caller of startGateway", () => {
  it("/readyz also reports each added check (as `prompter start` adds the worker's)", async () => {
    let workerRunning = false;
    const quiet: Log = { debug() {}, info() {}, warn() {}, error() {} };
    const gateway = await startGateway(loadConfig({ NODE_ENV: "test", PORT: "0", JWT_SECRET: TEST_JWT_SECRET }), db.authUrl, quiet, {
      readinessChecks: { worker: async (client) => workerRunning && (await client.query("select true as up")).rows[0].up },
    });
    try {
      const readyz = async () => {
        const response = await fetch(`http://127.0.0.1:${gateway.port}/readyz`);
        return { status: response.status, checks: (await response.json()).checks };
      };
      expect(await readyz()).toEqual({ status: 503, checks: { database: "ok", migrations: "ok", worker: "failing" } });
      workerRunning = true;
      expect(await readyz()).toEqual({ status: 200, checks: { database: "ok", migrations: "ok", worker: "ok" } });
    } finally {
      await gateway.close();
    }
  });
});

describe("prompter start --no-worker", () => {
  it("serves the gateway alone, ready while any worker process is alive, with its metrics", async () => {
    const gatewayOnly = await startServer({ databaseUrl: db.url, args: ["start", "--no-worker"], env: { WORKER_DEAD_AFTER: "1h" } });
    try {
      expect((await fetch(`${gatewayOnly.baseUrl}/readyz`).then((r) => r.json())).checks).toEqual({ database: "ok", migrations: "ok", worker: "ok" });
      const metrics = await (await fetch(`${gatewayOnly.baseUrl}/metrics`)).text();
      expect(metrics).toMatch(/^prompter_db_pool_connections\{pool="gateway"\} \d+$/m);
      expect(metrics).not.toContain('pool="worker"');
      expect(metrics).toMatch(/^prompter_workers_alive 1$/m);
    } finally {
      expect(await gatewayOnly.stop()).toBe(0);
    }
  });
});

describe("production", () => {
  it("serves no Ruru, not even on GET /graphql for a browser", async () => {
    const production = await startServer({ databaseUrl: db.url, env: { NODE_ENV: "production" } });
    try {
      expect((await fetch(`${production.baseUrl}/graphiql`)).status).toBe(404);
      const browser = await fetch(`${production.baseUrl}/graphql`, { headers: { accept: "text/html" } });
      expect(browser.headers.get("content-type")).not.toMatch(/html/);
      expect(await graphql(production, "{ currentUserId }", {}, token)).toMatchObject({ status: 200, data: { currentUserId: expect.any(String) } });
    } finally {
      await production.stop();
    }
    expect((await fetch(`${server.baseUrl}/graphiql`)).headers.get("content-type")).toMatch(/html/);
  });

  it("refuses to start without a strong JWT_SECRET", async () => {
    const failure = await startServer({ databaseUrl: db.url, env: { NODE_ENV: "production", JWT_SECRET: "short" } })
      .then((started) => started.stop(), (error: Error) => error.message);
    expect(failure).toMatch(/exited with code 2 before it was ready[\s\S]*JWT_SECRET is too weak for production: zxcvbn estimates/);
  });
});
