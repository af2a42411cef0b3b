// An export that keeps failing is retried with a message for the user; once it
// fails for good it is logged once at error level, counted, and posted to
// ALERT_WEBHOOK_URL, retried while the webhook fails; so is one whose worker
// died during its last attempt, which the next worker's heartbeat finds.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { readExport, requestExport, type SignedIn, startTestWorker, waitForExport, waitUntil } from "../exports/support.ts";
import { parseMetrics, total } from "./support.ts";

const db = useTestDatabase();
let user: SignedIn;
let exportDir: string;
let webhook: Server;
let webhookUrl: string;
/** What the webhook received, and how it answers each next request. */
const received: Record<string, unknown>[] = [];
const answers: number[] = [];

beforeAll(async () => {
  exportDir = await mkdtemp(path.join(tmpdir(), "prompter-exports-"));
  user = { role: "app_user", userId: await createUser(db.pool) };
  webhook = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      received.push(JSON.parse(body));
      res.writeHead(answers.shift() ?? 200).end();
    });
  });
  await new Promise<void>((resolve) => webhook.listen(0, "127.0.0.1", resolve));
  webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/hooks/secret-path-token`;
});

afterAll(async () => {
  await new Promise((resolve) => webhook.close(resolve));
  await rm(exportDir, { recursive: true, force: true });
});

it("retries a failing export with a message for the user; after its last attempt, one error line and an alert retried until the webhook takes it", async () => {
  received.length = 0;
  answers.push(503);
  // The directory disappears after the worker has created it, so every attempt fails.
  const missing = path.join(exportDir, "missing");
  const worker = await startTestWorker(db.url, missing, { ALERT_WEBHOOK_URL: webhookUrl });
  await rm(missing, { recursive: true });
  try {
    const id = await requestExport(db.pool, user, "judge_scores");
    const retrying = await waitUntil(
      () => readExport(db.pool, id),
      (row) => row.attempts === 1 && row.status === "queued",
      "the first attempt has failed",
    );
    expect(retrying.error_message).toBe("Attempt 1 of 5 failed (the server's export directory is missing); the export will be retried shortly.");
    // Skip the backoff: make the next attempt, due now, the last one. Only an unlocked
    // job can be rescheduled, and the worker unlocks it just after the export row changed.
    await waitUntil(
      () => db.pool.query("select graphile_worker.reschedule_jobs(array(select id from graphile_worker.jobs where task_identifier = 'export'), run_at := now(), attempts := 4)"),
      (result) => result.rowCount === 1,
      "the failed job could be rescheduled",
    );
    const failed = await waitForExport(db.pool, id);
    expect(failed).toMatchObject({ status: "failed", attempts: 5, file_name: null, rows: null });
    expect(failed.error_message).toBe(`The export failed 5 times (the server's export directory is missing); try again later, or ask your operator about export ${id}.`);
    await waitUntil(async () => received.length, (count) => count === 2, "the webhook has been called twice");

    expect(received[0]).toEqual(received[1]);
    expect(received[1]).toMatchObject({
      alert: "export_failed",
      severity: "error",
      exportId: Number(id),
      userId: user.userId,
      kind: "judge_scores",
      attempt: 5,
      requestId: null,
      service: "prompter",
      error: expect.stringContaining(missing),
      summary: expect.stringMatching(new RegExp(`^Export ${id} \\(judge_scores\\) failed after 5 attempt\\(s\\): `)),
    });
    await waitUntil(async () => worker.lines.find((line) => line.message === "alert delivered"), Boolean, "the delivery is logged");
    // One line per failed attempt, a warning until the last, which is the only error; graphile-worker's own line about each is debug only.
    const failureLines = worker.lines.filter((line) => line.fields.exportId === Number(id) && line.message !== "export started");
    expect(failureLines.map((line) => [line.level, line.message, line.fields.attempt])).toEqual([
      ["warn", "export attempt failed; it will be retried", 1],
      ["error", "export failed for good", 5],
    ]);
    expect(failureLines[1].fields.error).toContain(missing);
    expect(worker.lines.filter((line) => line.level === "error")).toEqual([failureLines[1]]);
    expect(worker.lines.find((line) => line.message === "alert delivery failed; retrying")?.fields).toMatchObject({
      alert: "export_failed",
      attempt: 1,
      error: "the webhook answered HTTP 503",
    });
    expect(JSON.stringify(worker.lines)).not.toContain("secret-path-token");
    const samples = parseMetrics(await worker.metrics.registry.metrics());
    expect(total(samples, "prompter_exports_failed_total", { kind: "judge_scores" })).toBe(1);
    expect(total(samples, "prompter_export_attempts_failed_total", { kind: "judge_scores" })).toBe(1);
    expect(total(samples, "prompter_alert_deliveries_total", { outcome: "delivered" })).toBe(1);
  } finally {
    await worker.stop();
  }
});

it("fails and alerts the export of a worker that died during its last attempt; releases a dead worker's other jobs", async () => {
  received.length = 0;
  const last = await requestExport(db.pool, user, "prompt_versions");
  const retried = await requestExport(db.pool, user, "judge_scores");
  // What a worker killed mid-export leaves: its jobs locked, its exports running, its heartbeat a minute old.
  await db.pool.query(`
    insert into app_private.worker_heartbeats (pool_id, hostname, pid, started_at, last_seen)
    values ('pool-killed', 'gone-host', 4242, now() - interval '5 minutes', now() - interval '1 minute')`);
  await db.pool.query(
    `update graphile_worker._private_jobs
        set locked_by = 'pool-killed', locked_at = now() - interval '2 minutes',
            attempts = case when payload ->> 'exportId' = $1 then max_attempts else 1 end
      where payload ->> 'exportId' in ($1, $2)`,
    [last, retried],
  );
  await db.pool.query(
    "update app_public.exports e set status = 'running', attempts = j.attempts from graphile_worker._private_jobs j where e.id = (j.payload ->> 'exportId')::bigint and e.id in ($1, $2)",
    [last, retried],
  );

  // Only one worker releases at a time: while another holds the lock, a caller does nothing.
  const other = await db.pool.connect();
  try {
    await other.query("begin");
    await other.query("select from app_private.process_locks where name = 'release_dead_workers' for update");
    expect((await db.pool.query("select * from app_private.release_dead_workers(interval '30 seconds')")).rows).toEqual([]);
  } finally {
    await other.query("rollback");
    other.release();
  }

  const worker = await startTestWorker(db.url, exportDir, { ALERT_WEBHOOK_URL: webhookUrl, WORKER_HEARTBEAT_INTERVAL: "1", WORKER_DEAD_AFTER: "2" });
  try {
    expect(await waitForExport(db.pool, retried)).toMatchObject({ status: "succeeded", attempts: 2 });
    expect(await readExport(db.pool, last)).toMatchObject({
      status: "failed",
      attempts: 5,
      error_message: `The export failed 5 times (its worker stopped during the last attempt); try again later, or ask your operator about export ${last}.`,
    });
    await waitUntil(async () => received.length, (count) => count === 1, "the webhook has been called");
    expect(received[0]).toMatchObject({ alert: "export_failed", exportId: Number(last), kind: "prompt_versions", attempt: 5 });
    expect(worker.lines.find((line) => line.message === "worker presumed dead: its jobs are released to be retried")?.fields).toMatchObject({
      deadPoolId: "pool-killed",
      deadHostname: "gone-host",
      deadPid: 4242,
    });
    const { rows: heartbeats } = await db.pool.query("select pool_id from app_private.worker_heartbeats");
    expect(heartbeats).toEqual([{ pool_id: worker.poolId }]);
    // The failed export's job is spent: kept by graphile-worker, never run again.
    const { rows: jobs } = await db.pool.query("select attempts, max_attempts, locked_by from graphile_worker._private_jobs where payload ->> 'exportId' = $1", [last]);
    expect(jobs).toEqual([{ attempts: 5, max_attempts: 5, locked_by: null }]);
  } finally {
    await worker.stop();
  }
});
