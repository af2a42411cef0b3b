// PostgreSQL restarts (a failover, a minor upgrade, a maintenance window) and
// stays down for a while, under `prompter start` (gateway and worker in one
// process) on a cluster of the test's own. The running export is retried and
// succeeds once; exports requested after the restart run; while the database is
// down REST and GraphQL answer 503 with Retry-After at once; /readyz tells the
// truth throughout and the process recovers without a restart by hand.
import { readdir } from "node:fs/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createUser } from "../support/db.ts";
import { signTestToken, startServer, type RunningServer } from "../support/server.ts";
import { exportContents, readExport, type ExportRow, type SignedIn } from "../exports/support.ts";
import { expectedExport } from "../exports/oracle.ts";
import { parseMetrics, total } from "../ops/support.ts";
import { callAs, OUTAGE_SECONDS, startControlledPostgres, within, type ControlledPostgres } from "./support.ts";

let database: ControlledPostgres;
let server: RunningServer;
let user: SignedIn & { token: string };
const requested: string[] = [];

beforeAll(async () => {
  database = await startControlledPostgres();
  const userId = await createUser(database.pool);
  await database.pool.query("select app_private.generate_demo($1, 30)", [userId]);
  user = { role: "app_user", userId, token: signTestToken(userId) };
  server = await startServer({
    databaseUrl: database.url,
    args: ["start"],
    // Dead-worker detection would take ten minutes: the runner that died with the
    // database must have its jobs released by its own process, when it replaces it.
    // One user keeps many requests in flight at once here, more than the default per-caller limit.
    env: { WORKER_HEARTBEAT_INTERVAL: "1", WORKER_DEAD_AFTER: "10m", EXPORT_WAIT_SECONDS: "30", CALLER_MAX_CONCURRENT: "50" },
  });
});

afterAll(async () => {
  await server?.stop();
  await database?.destroy();
});

const call = (path: string, init?: RequestInit) => callAs(server.baseUrl, user.token, path, init);

async function requestExport(route: string): Promise<string> {
  const { status, body } = await call(`/api/storage/${route}`, { method: "POST" });
  expect(status, JSON.stringify(body)).toBe(202);
  requested.push(String(body.export_id));
  return String(body.export_id);
}

const readyz = () => fetch(`${server.baseUrl}/readyz`, { signal: AbortSignal.timeout(15_000) }).then((response) => response.status);

/** Every export requested succeeded exactly once, with what the database holds, and nothing else is in EXPORT_DIR. */
async function expectEveryExportSucceededOnce(): Promise<ExportRow[]> {
  const rows: ExportRow[] = [];
  for (const id of requested) {
    const row = await readExport(database.pool, id);
    expect(row, `export ${id}`).toMatchObject({ status: "succeeded", error_message: null });
    expect(await exportContents(server.exportDir, row)).toEqual(await expectedExport(database.pool, user, row.kind));
    rows.push(row);
  }
  expect((await readdir(server.exportDir)).sort()).toEqual(rows.map((row) => row.file_name).sort());
  const { rows: jobsLeft } = await database.pool.query("select id from graphile_worker.jobs where task_identifier = 'export'");
  expect(jobsLeft).toEqual([]);
  return rows;
}

it("a restart during a running export: it succeeds on a later attempt, exports requested since run, /readyz recovers", { timeout: 120_000 }, async () => {
  // agent_stats is read by the "all" export's last file only: locking it holds the export mid-way.
  const blocker = await database.pool.connect();
  await blocker.query("begin");
  await blocker.query("lock table app_hidden.agent_stats in access exclusive mode");
  // Requested with ?wait=true: the request waits through the restart (its reads fail meanwhile) and
  // answers with the export's state, never 503, which would have the client request it again.
  const waiting = call("/api/storage/export-all?wait=true", { method: "POST" });
  const victim = await within(30, "the export is queued", async () =>
    String((await database.pool.query("select id from app_public.exports where kind = 'all'")).rows[0].id));
  requested.push(victim);
  await within(30, "the export waits for the lock halfway", async () =>
    (await database.pool.query("select from pg_stat_activity where application_name like $1 and wait_event_type = 'Lock'", [`prompter-worker export=${victim} %`])).rowCount === 1);
  expect(await readExport(database.pool, victim)).toMatchObject({ status: "running", attempts: 1 });
  expect(await readyz()).toBe(200);

  await database.stop();
  blocker.release(true);
  await database.start();
  const back = Date.now();

  // Requested while the worker recovers: they wait in the queue, then run.
  const queued = await within(30, "the gateway takes requests again", () => requestExport("export-multi-agent"));
  await requestExport("export-all");
  await within(60, "every export has succeeded", async () =>
    (await database.pool.query("select count(*)::int as n from app_public.exports where status = 'succeeded'")).rows[0].n === requested.length);
  await within(60, "/readyz answers 200", readyz, (status) => status === 200);
  console.info(`database restart: every export done and /readyz 200 ${((Date.now() - back) / 1000).toFixed(1)} s after the database was back`);

  const waited = await waiting;
  expect([200, 202], JSON.stringify(waited)).toContain(waited.status);
  expect(waited.body.export_id).toBe(Number(victim));
  const rows = await expectEveryExportSucceededOnce();
  expect(rows.find((row) => row.id === victim)!.attempts).toBeGreaterThan(1);
  expect(rows.find((row) => row.id === queued)!.kind).toBe("multi_agent_log");
  // The worker's runner died with the database and was replaced inside the same process.
  const lines = server.logLines();
  const restarts = lines.filter((line) => line.msg === "worker runner restarted").length;
  expect(restarts).toBeGreaterThan(0);
  const metrics = parseMetrics(await (await fetch(`${server.baseUrl}/metrics`)).text());
  expect(total(metrics, "prompter_worker_restarts_total")).toBe(restarts);
  expect(server.child.exitCode).toBe(null);
});

it("while the database is down REST and GraphQL answer 503 with Retry-After at once; all recovers after", { timeout: 120_000 }, async () => {
  await database.stop();
  const stoppedAt = Date.now();
  let answered = 0;
  while (Date.now() - stoppedAt < OUTAGE_SECONDS * 1000) {
    const rest = await call("/api/exports");
    expect(rest).toEqual({
      path: "/api/exports",
      status: 503,
      retryAfter: "5",
      body: { success: false, error: { code: "DATABASE_UNAVAILABLE", message: expect.stringMatching(/try again in a few seconds/) } },
    });
    const exportRequest = await call("/api/storage/export-multi-agent?wait=true", { method: "POST" });
    expect([exportRequest.status, exportRequest.retryAfter, exportRequest.body.error.code]).toEqual([503, "5", "DATABASE_UNAVAILABLE"]);
    const graphql = await call("/graphql", { method: "POST", body: JSON.stringify({ query: "{ allPrompts { totalCount } }" }) });
    expect([graphql.status, graphql.retryAfter]).toEqual([503, "5"]);
    expect(graphql.body.errors[0].extensions).toEqual({ code: "DATABASE_UNAVAILABLE", retryAfterSeconds: 5 });
    expect(await readyz()).toBe(503);
    expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
    answered++;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  expect(answered).toBeGreaterThan(0);

  await database.start();
  const back = Date.now();
  await within(30, "REST answers 200 again", () => call("/api/exports"), (response) => response.status === 200);
  const restMs = Date.now() - back;
  // ?wait=true waits for the worker again, woken by the export's notifications.
  const waited = await within(60, "an export requested with ?wait=true succeeds", () =>
    call("/api/storage/export-multi-agent?wait=true", { method: "POST" }), (response) => response.status === 200);
  requested.push(String(waited.body.export_id));
  expect(waited.body).toMatchObject({ success: true, status: "succeeded" });
  await within(60, "/readyz answers 200", readyz, (status) => status === 200);
  console.info(`database down ${OUTAGE_SECONDS} s: REST 200 ${(restMs / 1000).toFixed(1)} s and /readyz 200 ${((Date.now() - back) / 1000).toFixed(1)} s after it was back`);
  expect(await call("/graphql", { method: "POST", body: JSON.stringify({ query: "{ allPrompts { totalCount } }" }) }))
    .toMatchObject({ status: 200, body: { data: { allPrompts: { totalCount: 30 } } } });
  await expectEveryExportSucceededOnce();
  expect(server.child.exitCode).toBe(null);
});
