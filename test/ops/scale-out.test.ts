// Scale-out: one `prompter server` and two `prompter worker` processes share a
// database and an EXPORT_DIR. Fifty exports from five users (the rate limit
// allows ten a minute each); one worker is SIGKILLed while it runs an export,
// and the other, finding its heartbeat silent, runs it again. Every export
// succeeds exactly once with what its requester may read; the metrics move; the
// logs are JSON lines that trace each export to its request and hold no secret.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { signTestToken, startServer, type LogRecord, type RunningServer } from "../support/server.ts";
import { expectedExport } from "../exports/oracle.ts";
import { exportContents, readExport, type ExportRow, type SignedIn, waitUntil } from "../exports/support.ts";
import { scrape, spawnMetricsWorker, total, withPassword, type WorkerProcess } from "./support.ts";

const db = useTestDatabase();
const METRICS_TOKEN = "ops-metrics-token-0123456789abcdef";
const VICTIM_REQUEST_ID = "scale-out-victim";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type User = SignedIn & { token: string };
interface Requested {
  id: string;
  user: User;
  kind: string;
  requestId: string;
}

let exportDir: string;
let password: string;
let server: RunningServer;
let workers: WorkerProcess[];
const users: User[] = [];

beforeAll(async () => {
  exportDir = await mkdtemp(path.join(tmpdir(), "prompter-exports-"));
  for (let i = 0; i < 5; i++) {
    const userId = await createUser(db.pool);
    await db.pool.query("select app_private.generate_demo($1, 4)", [userId]);
    users.push({ role: "app_user", userId, token: signTestToken(userId) });
  }
  const database = withPassword(db.url);
  password = database.password;
  // Each user sends several requests at once here: more than the default per-caller limit.
  const env = { EXPORT_DIR: exportDir, METRICS_TOKEN, WORKER_HEARTBEAT_INTERVAL: "1", WORKER_DEAD_AFTER: "3", CALLER_MAX_CONCURRENT: "50" };
  [server, ...workers] = await Promise.all([
    startServer({ databaseUrl: database.url, env }),
    spawnMetricsWorker(database.url, env),
    spawnMetricsWorker(database.url, env),
  ]);
});

afterAll(async () => {
  await Promise.all([server, ...(workers ?? [])].map((process) => process?.stop()));
  await rm(exportDir, { recursive: true, force: true });
});

/** Queues an export through the API: REST for its two kinds without options, GraphQL otherwise. */
async function request(user: User, kind: string, options: { gzip?: boolean } = {}, requestId?: string): Promise<Requested> {
  const headers = { authorization: `Bearer ${user.token}`, "content-type": "application/json", ...(requestId ? { "x-request-id": requestId } : {}) };
  const rest = { multi_agent_log: "export-multi-agent", all: "export-all" }[kind];
  const response = rest && !options.gzip
    ? await fetch(`${server.baseUrl}/api/storage/${rest}`, { method: "POST", headers })
    : await fetch(`${server.baseUrl}/graphql`, {
        method: "POST",
        headers,
        body: JSON.stringify({
          query: "mutation ($kind: String!, $options: JSON) { requestExport(input: {kind: $kind, options: $options}) { result { rowId } } }",
          variables: { kind, options },
        }),
      });
  const body = await response.json();
  const id = String(body.export_id ?? body.data?.requestExport?.result?.rowId);
  expect(id, JSON.stringify(body)).toMatch(/^\d+$/);
  return { id, user, kind, requestId: response.headers.get("x-request-id")! };
}

const exportsSucceeded = async () =>
  Number((await db.pool.query("select count(*) from app_public.exports where status = 'succeeded'")).rows[0].count);

const logged = (lines: LogRecord[], message: string) => lines.filter((line) => line.msg === message);

it("runs 50 exports exactly once across two workers while one of them is killed mid-export", { timeout: 90_000 }, async () => {
  // /metrics answers only with METRICS_TOKEN, on the gateway and on each worker.
  expect((await scrape(`${server.baseUrl}/metrics`)).status).toBe(401);
  expect((await scrape(workers[0].metricsUrl, "wrong-token")).status).toBe(401);
  const before = (await scrape(`${server.baseUrl}/metrics`, METRICS_TOKEN)).samples;

  // agent_stats is read by the "all" export's last file only: locking it holds
  // the victim export mid-way in whichever worker takes it.
  const blocker = await db.pool.connect();
  const requested: Requested[] = [];
  let holder: WorkerProcess;
  let victim: Requested;
  try {
    await blocker.query("begin");
    await blocker.query("lock table app_hidden.agent_stats in access exclusive mode");
    victim = await request(users[0], "all", {}, VICTIM_REQUEST_ID);
    requested.push(victim);
    const { pid, job_id } = await waitUntil(
      async () =>
        (await db.pool.query<{ pid: number; job_id: string }>(
          `select h.pid, j.id as job_id from graphile_worker._private_jobs j
             join app_private.worker_heartbeats h on h.pool_id = j.locked_by
            where (j.payload ->> 'exportId') = $1`,
          [victim.id],
        )).rows[0],
      (row) => row !== undefined,
      "a worker has taken the victim export",
    );
    holder = workers.find((worker) => worker.child.pid === pid)!;
    // The export's snapshot connection is named after it while it runs (here: while it waits for the lock).
    await waitUntil(
      async () => (await db.pool.query("select from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'",
        [`prompter-worker export=${victim.id} job=${job_id}`])).rowCount,
      (count) => count === 1,
      "the victim export waits for the lock halfway",
    );
    expect(await readExport(db.pool, victim.id)).toMatchObject({ status: "running", attempts: 1 });

    const kinds = ["multi_agent_log", "prompt_versions", "judge_scores"];
    requested.push(...(await Promise.all(Array.from({ length: 24 }, (_, i) =>
      request(users[(i + 1) % users.length], kinds[i % kinds.length], { gzip: i % 2 === 1 })))));
    await waitUntil(exportsSucceeded, (count) => count >= 12, "a dozen exports have succeeded");
    holder.child.kill("SIGKILL");
    await holder.exited;
  } finally {
    await blocker.query("rollback");
    blocker.release();
  }
  const survivor = workers.find((worker) => worker !== holder)!;
  const allKinds = ["multi_agent_log", "prompt_versions", "judge_scores", "agent_effectiveness", "all"];
  requested.push(...(await Promise.all(Array.from({ length: 25 }, (_, i) =>
    request(users[(i + 25) % users.length], allKinds[i % allKinds.length], { gzip: i % 2 === 1 && allKinds[i % allKinds.length] !== "all" })))));
  expect(requested).toHaveLength(50);
  const deadline = Date.now() + 60_000;
  while ((await exportsSucceeded()) < 50 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));

  // Every export succeeded once, with what its requester may read, and under the id of the request that queued it.
  const rows: ExportRow[] = [];
  for (const export_ of requested) {
    const row = await readExport(db.pool, export_.id);
    expect(row, `export ${export_.id}`).toMatchObject({ status: "succeeded", user_id: export_.user.userId, kind: export_.kind });
    expect(await exportContents(exportDir, row)).toEqual(await expectedExport(db.pool, export_.user, export_.kind));
    const { rows: [{ request_id }] } = await db.pool.query("select request_id from app_public.exports where id = $1", [export_.id]);
    expect(request_id).toBe(export_.requestId);
    rows.push(row);
  }
  expect((await readdir(exportDir)).sort()).toEqual(rows.map((row) => row.file_name).sort());
  const { rows: jobsLeft } = await db.pool.query("select id from graphile_worker.jobs where task_identifier = 'export'");
  expect(jobsLeft).toEqual([]);
  // No export was written twice. (The killed worker may have died between recording a success and logging it.)
  const workerLines = [...holder!.logLines(), ...survivor.logLines()];
  const successes = logged(workerLines, "export succeeded").map((line) => String(line.exportId));
  expect(new Set(successes).size).toBe(successes.length);
  expect(requested.map((export_) => export_.id)).toEqual(expect.arrayContaining(successes));
  expect(logged(workerLines, "export finished after a newer attempt took over; discarded its file")).toEqual([]);

  // The victim was released by the survivor when the killed worker fell silent, and its second attempt succeeded there.
  expect(await readExport(db.pool, victim!.id)).toMatchObject({ attempts: 2 });
  const [release] = logged(survivor.logLines(), "worker presumed dead: its jobs are released to be retried");
  expect(release).toMatchObject({ level: "warn", deadPid: holder!.child.pid });
  expect(logged(survivor.logLines(), "export succeeded").find((line) => String(line.exportId) === victim!.id))
    .toMatchObject({ attempt: 2, requestId: VICTIM_REQUEST_ID, userId: users[0].userId, kind: "all", rows: expect.any(Number), bytes: expect.any(Number) });
  const requestLine = logged(server.logLines(), "request").find((line) => line.requestId === VICTIM_REQUEST_ID);
  expect(requestLine).toMatchObject({ method: "POST", route: "/api/storage/export-all", status: 202, userId: users[0].userId });
  expect(requested.filter((export_) => export_ !== victim).every((export_) => UUID.test(export_.requestId))).toBe(true);

  // The metrics moved: the gateway's requests, the workers' exports, and the deployment-wide gauges from the database.
  const after = (await scrape(`${server.baseUrl}/metrics`, METRICS_TOKEN)).samples;
  const restAll = requested.filter((export_) => export_.kind === "all").length;
  const requestsOf = (samples: typeof after, route: string) => total(samples, "prompter_http_request_duration_seconds_count", { route, method: "POST" });
  expect(requestsOf(after, "/api/storage/export-all") - requestsOf(before, "/api/storage/export-all")).toBe(restAll);
  expect(requestsOf(after, "/graphql") - requestsOf(before, "/graphql")).toBeGreaterThan(0);
  expect(total(after, "prompter_exports", { status: "succeeded" })).toBe(50);
  expect(total(after, "prompter_queue_jobs", { task: "export" })).toBe(0);
  expect(total(after, "prompter_workers_alive")).toBe(1);
  const survivorMetrics = (await scrape(survivor.metricsUrl, METRICS_TOKEN)).samples;
  const survivorSuccesses = logged(survivor.logLines(), "export succeeded").length;
  expect(total(survivorMetrics, "prompter_exports_succeeded_total")).toBe(survivorSuccesses);
  expect(total(survivorMetrics, "prompter_export_rows_count")).toBe(survivorSuccesses);
  expect(total(survivorMetrics, "prompter_dead_workers_total")).toBe(1);

  // Logs: JSON lines only, and no token, metrics token or database password in any of them.
  for (const process of [server, ...workers]) {
    const { stdout, stderr } = process.output();
    expect(stderr).toBe("");
    expect(process.logLines().length).toBeGreaterThan(0);
    for (const secret of [METRICS_TOKEN, password, ...users.map((user) => user.token)]) expect(stdout).not.toContain(secret);
  }
});
