// /healthz and /readyz, the gateway while its database is down and after it is
// back, and the production switches (no Ruru, no start without a strong secret).
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import pg from "pg";
import { loadConfig } from "../../src/config.ts";
import { startGateway } from "../../src/server/index.ts";
import { createUser, useTestDatabase } from "../support/db.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
let token: string;

beforeAll(async () => {
  token = signTestToken(await createUser(db.pool));
  server = await startServer({ databaseUrl: db.url });
});
afterAll(() => server?.stop());

async function get(path: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${server.baseUrl}${path}`, { headers });
  return { status: response.status, body: await response.json() };
}

/** Runs `work` with a superuser connection to the server's maintenance database. */
async function asSuperuser<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject("serverUrl") });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

describe("/healthz and /readyz", () => {
  it("are ready when the database answers and every migration is applied", async () => {
    expect(await get("/healthz")).toEqual({ status: 200, body: { success: true, status: "ok" } });
    expect(await get("/readyz")).toEqual({
      status: 200,
      body: { success: true, status: "ready", checks: { database: "ok", migrations: "ok" } },
    });
  });

  it("/readyz fails while a committed migration is not applied", async () => {
    const { rows } = await db.pool.query("delete from graphile_migrate.migrations returning *");
    try {
      expect(await get("/readyz")).toEqual({
        status: 503,
        body: {
          success: false,
          error: { code: "NOT_READY", message: "Not ready: migrations pending." },
          checks: { database: "ok", migrations: "pending" },
        },
      });
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
        expect(await get("/readyz")).toEqual({
          status: 503,
          body: {
            success: false,
            error: { code: "NOT_READY", message: "Not ready: database unreachable, migrations unknown." },
            checks: { database: "unreachable", migrations: "unknown" },
          },
        });
        expect((await get("/healthz")).status).toBe(200);
        // Tokens are checked before any SQL: a forged one is refused even now.
        expect(await get("/api/exports", { authorization: `Bearer ${signTestToken(1, { secret: "some-other-secret-0123456789abcdef" })}` }))
          .toMatchObject({ status: 401, body: { error: { code: "INVALID_TOKEN" } } });
        const failing = await get("/api/exports", { authorization: `Bearer ${token}` });
        expect(failing).toMatchObject({ status: 500, body: { success: false, error: { code: "INTERNAL" } } });
        expect(JSON.stringify(failing.body)).not.toMatch(/accepting connections|prompter_test/);
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
    const gateway = await startGateway(loadConfig({ NODE_ENV: "test", PORT: "0", HOST: "127.0.0.1" }), db.url, () => {}, {
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
    expect(failure).toMatch(/exited with code 2 before it was ready[\s\S]*JWT_SECRET must be set to at least 32 random characters/);
  });
});
