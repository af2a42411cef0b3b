// Graceful shutdown, as in a rolling restart: SIGTERM stops a server from taking
// connections while its in-flight request finishes, and stops a worker from
// taking jobs while its running export finishes; nothing is lost, and the
// processes exit 0.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { asSuperuser, createUser, useTestDatabase } from "../support/db.ts";
import { signTestToken, startServer, type PrompterProcess, type RunningServer } from "../support/server.ts";
import { readExport, requestExport, type SignedIn, spawnWorker, waitForExport, waitUntil } from "../exports/support.ts";

const db = useTestDatabase();
let user: SignedIn;
let exportDir: string;
const started: PrompterProcess[] = [];

beforeAll(async () => {
  exportDir = await mkdtemp(path.join(tmpdir(), "prompter-exports-"));
  user = { role: "app_user", userId: await createUser(db.pool) };
  await db.pool.query("select app_private.generate_demo($1, 3)", [user.userId]);
});
afterAll(async () => {
  await Promise.all(started.map((process) => process.stop()));
  await rm(exportDir, { recursive: true, force: true });
});

/** Runs `work` while `table` is locked in `mode` by another transaction, which ends when `work` does. */
async function whileLocked<T>(table: string, mode: string, work: () => Promise<T>): Promise<T> {
  const blocker = await db.pool.connect();
  try {
    await blocker.query("begin");
    await blocker.query(`lock table ${table} in ${mode} mode`);
    return await work();
  } finally {
    await blocker.query("rollback");
    blocker.release();
  }
}

/**
 * Queues an export that runs until a lock on agent_stats (which only this kind
 * reads) goes, SIGTERMs the worker while it runs, and runs `meanwhile` before
 * the lock goes. Returns the export's id.
 */
function stopDuringExport(worker: PrompterProcess, meanwhile: () => Promise<unknown>): Promise<string> {
  return whileLocked("app_hidden.agent_stats", "access exclusive", async () => {
    const id = await requestExport(db.pool, user, "agent_effectiveness");
    await waitUntil(() => readExport(db.pool, id), (row) => row.status === "running", "the export is running");
    worker.child.kill("SIGTERM");
    await meanwhile();
    return id;
  });
}

/** Requests an export (while app_public.exports is locked); once the request waits for the lock, gives its answer to come. */
async function exportRequestWaitingForLock(server: RunningServer, requestId: string): Promise<{ answer: Promise<Response> }> {
  const answer = fetch(`${server.baseUrl}/api/storage/export-multi-agent`, {
    method: "POST",
    headers: { authorization: `Bearer ${signTestToken(user.userId)}`, "x-request-id": requestId },
  });
  // The request's transaction is named after it while it waits for the lock
  // (which only a superuser sees of the authenticator's session).
  await waitUntil(
    async () => (await asSuperuser((client) => client.query("select from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'", [`prompter-gateway ${requestId}`]))).rowCount,
    (count) => count === 1,
    "the request waits for the lock",
  );
  return { answer };
}

const shuttingDown = (process: PrompterProcess) =>
  waitUntil(async () => process.output().stdout, (stdout) => stdout.includes("SIGTERM: shutting down"), "the process is shutting down");

it("a server finishes its in-flight request after SIGTERM, refuses new connections, then exits 0", async () => {
  const server = await startServer({ databaseUrl: db.url, env: { EXPORT_DIR: exportDir } });
  started.push(server);
  // Inserting the export waits for this lock.
  const { answer } = await whileLocked("app_public.exports", "exclusive", async () => {
    const { answer } = await exportRequestWaitingForLock(server, "shutdown-in-flight");
    server.child.kill("SIGTERM");
    await shuttingDown(server);
    await expect(fetch(`${server.baseUrl}/healthz`)).rejects.toThrow();
    return { answer };
  });
  const response = await answer;
  expect(response.status).toBe(202);
  const { export_id } = await response.json();
  expect(await server.exited).toBe(0);
  expect(await readExport(db.pool, String(export_id))).toMatchObject({ status: "queued" });
});

it("a worker finishes its running export after SIGTERM and takes no new job; the next worker takes the rest", async () => {
  const first = await spawnWorker(db.url, exportDir, { WORKER_CONCURRENCY: "2" });
  started.push(first);
  const running = await stopDuringExport(first, () => shuttingDown(first));
  // Queued while the first worker shuts down: it has a free slot, but takes nothing new.
  const later = await requestExport(db.pool, user, "judge_scores");
  expect(await waitForExport(db.pool, running)).toMatchObject({ status: "succeeded", attempts: 1 });
  expect(await first.exited).toBe(0);
  expect((await db.pool.query("select from app_private.worker_heartbeats")).rowCount).toBe(0);
  expect(await readExport(db.pool, later)).toMatchObject({ status: "queued", attempts: 0 });

  const next = await spawnWorker(db.url, exportDir);
  started.push(next);
  expect(await waitForExport(db.pool, later)).toMatchObject({ status: "succeeded", attempts: 1 });
  const succeeded = (process: PrompterProcess) =>
    process.logLines().filter((line) => line.msg === "export succeeded").map((line) => String(line.exportId));
  expect(succeeded(first)).toContain(running);
  expect(succeeded(first)).not.toContain(later);
  expect(succeeded(next)).toEqual([later]);
  expect(await next.stop()).toBe(0);
});

it("a worker whose export outlasts SHUTDOWN_GRACE aborts it and exits 0; the next worker runs it again", async () => {
  const first = await spawnWorker(db.url, exportDir, { SHUTDOWN_GRACE: "1" });
  started.push(first);
  const id = await stopDuringExport(first, async () => expect(await first.exited).toBe(0));
  expect(await readExport(db.pool, id)).toMatchObject({
    status: "queued",
    attempts: 1,
    error_message: "Attempt 1 of 5 failed; the export will be retried shortly.",
  });
  expect(first.logLines().find((line) => line.msg === "export attempt failed; it will be retried")).toMatchObject({
    exportId: Number(id),
    error: "aborted: the worker was stopped and SHUTDOWN_GRACE ran out before the export finished",
  });

  const next = await spawnWorker(db.url, exportDir);
  started.push(next);
  expect(await waitForExport(db.pool, id)).toMatchObject({ status: "succeeded", attempts: 2 });
});

it("a server whose request is stuck past SHUTDOWN_GRACE cancels its query, answers 503, logs it and exits, while the lock is still held", { timeout: 60_000 }, async () => {
  const server = await startServer({
    databaseUrl: db.url,
    env: { EXPORT_DIR: exportDir, SHUTDOWN_GRACE: "2", STATEMENT_TIMEOUT_USER: "10m", LOCK_TIMEOUT: "5s" },
  });
  started.push(server);
  await whileLocked("app_public.exports", "exclusive", async () => {
    const { answer } = await exportRequestWaitingForLock(server, "shutdown-stuck");
    server.child.kill("SIGTERM");
    const response = await answer;
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("1");
    expect((await response.json()).error.code).toBe("SHUTTING_DOWN");
    expect(await server.exited).toBe(0);
    // Its query no longer waits in PostgreSQL.
    const { rowCount } = await db.pool.query("select from pg_stat_activity where application_name = 'prompter-gateway shutdown-stuck'");
    expect(rowCount).toBe(0);
  });
  expect(server.logLines().find((line) => line.msg === "request cut off by shutdown")).toMatchObject({
    requestId: "shutdown-stuck",
    method: "POST",
    path: "/api/storage/export-multi-agent",
  });
});
