// Database time a request may take: its statements are cancelled past the
// statement_timeout of its role, its waits for locks past LOCK_TIMEOUT, and
// it waits a bounded time for a pool connection before 503 SERVER_BUSY.
// A function that sleeps stands in for a slow query; it is added to this
// test's own database before the gateway starts, so GraphQL offers it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
const tokens = { user: "", admin: "" };

beforeAll(async () => {
  await db.pool.query(`
    create function app_public.test_sleep(seconds float) returns int language sql stable as 'select 1 from pg_sleep(seconds)';
    grant execute on function app_public.test_sleep(float) to app_user, app_admin`);
  tokens.user = signTestToken(await createUser(db.pool));
  tokens.admin = signTestToken(await createUser(db.pool, { admin: true }), { admin: true });
  server = await startServer({
    databaseUrl: db.url,
    env: {
      STATEMENT_TIMEOUT_ANONYMOUS: "2s",
      STATEMENT_TIMEOUT_USER: "2s",
      STATEMENT_TIMEOUT_ADMIN: "10s",
      LOCK_TIMEOUT: "1s",
      PG_POOL_MAX: "1",
      PG_POOL_WAIT: "1s",
      PG_POOL_MAX_WAITING: "1",
    },
  });
});
afterAll(() => server?.stop());

const sleep = (seconds: number, token: string) => graphql(server, `{ testSleep(seconds: ${seconds}) }`, {}, token);

async function effectiveness(token: string) {
  const response = await fetch(`${server.baseUrl}/api/agents/effectiveness`, { headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, retryAfter: response.headers.get("retry-after"), body: await response.json() };
}

describe("statement and lock timeouts", () => {
  it("cancels a user's statement past the user's statement timeout, with a coded retryable error", async () => {
    const response = await sleep(3, tokens.user);
    expect(response.errors?.[0].extensions).toMatchObject({ code: "STATEMENT_TIMEOUT", retryAfterSeconds: 1 });
    expect(JSON.stringify(response)).not.toMatch(/canceling statement|pg_sleep/);
  });

  it("gives an admin the admin's (longer) statement timeout", async () => {
    const response = await sleep(1.5, tokens.admin);
    expect(response.errors).toBeUndefined();
    expect(response.data!.testSleep).toBe(1);
  });

  it("stops waiting for a lock after LOCK_TIMEOUT, in REST and GraphQL", async () => {
    const holder = await db.pool.connect();
    try {
      await holder.query("begin");
      await holder.query("lock table app_public.agent_effectiveness, app_public.judge_scores in access exclusive mode");
      const rest = await effectiveness(tokens.user);
      expect(rest).toMatchObject({ status: 503, retryAfter: "1", body: { error: { code: "LOCK_TIMEOUT" } } });
      const gql = await graphql(server, "{ allJudgeScores { totalCount } }", {}, tokens.user);
      expect(gql.errors?.[0].extensions?.code).toBe("LOCK_TIMEOUT");
    } finally {
      await holder.query("rollback");
      holder.release();
    }
    expect((await effectiveness(tokens.user)).status).toBe(200);
  });
});

describe("waiting for a pool connection", () => {
  it("answers 503 SERVER_BUSY with Retry-After when no connection comes free in time (REST and GraphQL)", async () => {
    // The one connection is busy for 4 s; the next request may wait 1 s, the one after that not at all.
    const hog = sleep(4, tokens.admin);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const [rest, gql] = await Promise.all([
      effectiveness(tokens.user),
      fetch(`${server.baseUrl}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${tokens.user}` },
        body: JSON.stringify({ query: "{ allPrompts { totalCount } }" }),
      }).then(async (r) => ({ status: r.status, retryAfter: r.headers.get("retry-after"), body: await r.json() })),
    ]);
    expect(rest).toMatchObject({ status: 503, retryAfter: "1", body: { success: false, error: { code: "SERVER_BUSY" } } });
    expect(gql).toMatchObject({ status: 503, retryAfter: "1" });
    expect(gql.body.errors[0].extensions).toMatchObject({ code: "SERVER_BUSY", retryAfterSeconds: 1 });
    expect((await hog).data!.testSleep).toBe(1);
    // Once the connection is free again, requests go through.
    expect((await effectiveness(tokens.user)).status).toBe(200);
    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    expect(Number(/^prompter_gateway_busy_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
  });
});
