// Every backend of prompter (the gateway's pool, its LISTEN connection, the
// worker's pool and the export's own connection) is terminated with
// pg_terminate_backend while an export runs and requests are in flight: each
// request answers (200/202, or 503 with Retry-After), none hangs, the process
// lives on, and every export succeeds exactly once with what the database holds.
import { readdir } from "node:fs/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { asSuperuser, createUser, useTestDatabase } from "../support/db.ts";
import { signTestToken, startServer, type RunningServer } from "../support/server.ts";
import { exportContents, readExport, type SignedIn } from "../exports/support.ts";
import { expectedExport } from "../exports/oracle.ts";
import { type Answer, callAs, within } from "./support.ts";

const db = useTestDatabase();
let server: RunningServer;
let user: SignedIn & { token: string };

beforeAll(async () => {
  const userId = await createUser(db.pool);
  await db.pool.query("select app_private.generate_demo($1, 30)", [userId]);
  user = { role: "app_user", userId, token: signTestToken(userId) };
  server = await startServer({
    databaseUrl: db.url,
    args: ["start"],
    // One user keeps many requests in flight at once here, more than the default per-caller limit.
    env: { WORKER_HEARTBEAT_INTERVAL: "1", WORKER_DEAD_AFTER: "10m", EXPORT_WAIT_SECONDS: "20", CALLER_MAX_CONCURRENT: "50" },
  });
});

afterAll(() => server?.stop());

const call = (path: string, init?: RequestInit) => callAs(server.baseUrl, user.token, path, init);

// As the DBA: the owner may not end the authenticator's sessions.
const terminatePrompterBackends = async () =>
  (await asSuperuser((client) => client.query<{ n: number }>(
    `select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
      where datname = current_database() and application_name like 'prompter-%'`,
  ), db.name)).rows[0].n;

it("terminating every prompter backend during an export and requests: all recovers, each export succeeds once", { timeout: 120_000 }, async () => {
  const requested: string[] = [];
  const blocker = await db.pool.connect();
  let inFlight: Answer[];
  try {
    await blocker.query("begin");
    await blocker.query("lock table app_hidden.agent_stats in access exclusive mode");
    const victim = await call("/api/storage/export-all", { method: "POST" });
    requested.push(String(victim.body.export_id));
    await within(30, "the export waits for the lock halfway", async () =>
      (await db.pool.query("select from pg_stat_activity where application_name like $1 and wait_event_type = 'Lock'", [`prompter-worker export=${requested[0]} %`])).rowCount === 1);

    const waiting = call("/api/storage/export-multi-agent?wait=true", { method: "POST" });
    // Terminated before its export was queued, the request would rightly answer 503: wait until it waits.
    await within(30, "the ?wait=true request waits for its export", async () =>
      (await db.pool.query("select from app_public.exports where kind = 'multi_agent_log'")).rowCount === 1);
    const requests = [
      waiting,
      ...Array.from({ length: 4 }, () => call("/api/exports")),
      ...Array.from({ length: 4 }, () => call("/graphql", { method: "POST", body: JSON.stringify({ query: "{ allPrompts { totalCount } }" }) })),
    ];
    expect(await terminatePrompterBackends()).toBeGreaterThan(2);
    await blocker.query("rollback");
    inFlight = await Promise.all(requests);
  } finally {
    blocker.release();
  }
  for (const response of inFlight) {
    expect([200, 202, 503], JSON.stringify(response)).toContain(response.status);
    if (response.status === 503) expect([response.retryAfter, response.body.error?.code ?? response.body.errors[0].extensions.code]).toEqual(["5", "DATABASE_UNAVAILABLE"]);
  }
  // The export waited for was queued before the fault: the wait outlives the lost connections
  // (a 503 would have the client request it a second time).
  const waited = inFlight[0];
  expect([200, 202]).toContain(waited.status);
  requested.push(String(waited.body.export_id));

  // Once more, with the retried export and a new one under way.
  requested.push(String((await within(10, "an export can be requested", () => call("/api/storage/export-multi-agent", { method: "POST" }), (r) => r.status === 202)).body.export_id));
  expect(await terminatePrompterBackends()).toBeGreaterThan(0);
  const terminated = Date.now();

  const rows = await within(60, "every export has succeeded", () => Promise.all(requested.map((id) => readExport(db.pool, id))),
    (exports) => exports.every((row) => row.status === "succeeded"));
  await within(60, "/readyz answers 200", () => fetch(`${server.baseUrl}/readyz`).then((r) => r.status), (status) => status === 200);
  console.info(`backends terminated: every export done and /readyz 200 ${((Date.now() - terminated) / 1000).toFixed(1)} s later`);
  for (const row of rows) expect(await exportContents(server.exportDir, row)).toEqual(await expectedExport(db.pool, user, row.kind));
  expect(rows[0].attempts).toBeGreaterThan(1);
  expect((await readdir(server.exportDir)).sort()).toEqual(rows.map((row) => row.file_name).sort());
  expect((await db.pool.query("select id from graphile_worker.jobs where task_identifier = 'export'")).rows).toEqual([]);
  expect(await call("/graphql", { method: "POST", body: JSON.stringify({ query: "{ allPrompts { totalCount } }" }) }))
    .toMatchObject({ status: 200, body: { data: { allPrompts: { totalCount: 30 } } } });
  expect(server.child.exitCode).toBe(null);
});
