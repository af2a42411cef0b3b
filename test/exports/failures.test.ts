// Exports that do not go to plan: a worker process killed in the middle of one,
// and an export that keeps failing until its last attempt.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import {
  exportFile,
  exportQuery,
  parseCsv,
  readExport,
  requestExport,
  selectAsText,
  type SignedIn,
  spawnWorker,
  startTestWorker,
  unzip,
  waitForExport,
  waitUntil,
} from "./support.ts";

const db = useTestDatabase();
let exportDir: string;
let user: SignedIn;

beforeAll(async () => {
  exportDir = await mkdtemp(path.join(tmpdir(), "prompter-exports-"));
  user = { role: "app_user", userId: await createUser(db.pool) };
  await db.pool.query("select app_private.generate_demo($1, 200)", [user.userId]);
});

afterAll(() => rm(exportDir, { recursive: true, force: true }));

it("a worker killed mid-export leaves no export file, and the export succeeds when its job runs again", async () => {
  const child = await spawnWorker(db.url, exportDir);
  const blocker = await db.pool.connect();
  let id: string;
  try {
    // agent_effectiveness, the zip's last file, is the only one reading agent_stats:
    // locking it holds the export after three files, so the kill lands mid-export.
    await blocker.query("begin");
    await blocker.query("lock table app_hidden.agent_stats in access exclusive mode");
    id = await requestExport(db.pool, user, "all");
    await waitUntil(
      () => readdir(exportDir),
      (names) => names.some((name) => name.endsWith(".zip.partial")),
      "the export has written part of its zip",
    );
    child.child.kill("SIGKILL");
    await child.exited;
  } finally {
    await blocker.query("rollback");
    blocker.release();
  }

  const killed = await readExport(db.pool, id);
  expect(killed).toMatchObject({ status: "running", attempts: 1, file_name: null });
  expect((await readdir(exportDir)).filter((name) => !name.endsWith(".partial"))).toEqual([]);

  // graphile-worker would keep the dead worker's lock for hours; the next
  // worker finds its heartbeat silent and releases the job.
  const worker = await startTestWorker(db.url, exportDir, { WORKER_HEARTBEAT_INTERVAL: "1", WORKER_DEAD_AFTER: "2" });
  try {
    const retried = await waitForExport(db.pool, id);
    expect(retried).toMatchObject({ status: "succeeded", attempts: 2, error_message: null });
    // The killed attempt's temporary file is gone: only the export's file is left.
    expect(await readdir(exportDir)).toEqual([retried.file_name]);
    const files = unzip(await exportFile(exportDir, retried));
    const log = parseCsv(files.get("multi_agent_log.csv")!);
    expect(log).toEqual(await selectAsText(db.pool, user, await exportQuery(db.pool, "multi_agent_log.csv")));
    expect(retried.rows).toBe(String([...files.values()].reduce((sum, data) => sum + parseCsv(data).length - 1, 0)));
  } finally {
    await worker.stop();
  }
});

it("a failing export is retried with a message for the user; after its last attempt it is failed and logged as an error", async () => {
  // The directory disappears after the worker has created it, so every attempt fails.
  const missing = path.join(exportDir, "missing");
  const worker = await startTestWorker(db.url, missing);
  await rm(missing, { recursive: true });
  try {
    const id = await requestExport(db.pool, user, "judge_scores");
    const retrying = await waitUntil(
      () => readExport(db.pool, id),
      (row) => row.status === "queued" && row.attempts === 1,
      "the first attempt has failed",
    );
    expect(retrying.error_message).toBe("Attempt 1 of 5 failed (the server's export directory is missing); the export will be retried shortly.");

    // Skip the backoff: make the next attempt, due now, the last one. Only an
    // unlocked job can be rescheduled, and the worker unlocks it just after the export row changed.
    await waitUntil(
      () =>
        db.pool.query(
          "select graphile_worker.reschedule_jobs(array(select id from graphile_worker.jobs where task_identifier = 'export'), run_at := now(), attempts := 4)",
        ),
      (result) => result.rowCount === 1,
      "the failed job could be rescheduled",
    );
    const failed = await waitForExport(db.pool, id);
    expect(failed).toMatchObject({ status: "failed", attempts: 5, file_name: null, rows: null });
    expect(failed.error_message).toBe(`The export failed 5 times (the server's export directory is missing); try again later, or ask your operator about export ${id}.`);

    // One line per failed attempt, a warning until the last, which is an error; graphile-worker's own line about each is debug only.
    const failureLines = worker.lines.filter((line) => line.fields.exportId === Number(id) && line.message !== "export started");
    const last = failureLines.pop()!;
    expect([last.level, last.message, last.fields.attempt]).toEqual(["error", "export failed for good", 5]);
    expect(last.fields.error).toContain(missing);
    expect(failureLines[0].fields.attempt).toBe(1);
    for (const line of failureLines) expect([line.level, line.message]).toEqual(["warn", "export attempt failed; it will be retried"]);
    expect(worker.lines.filter((line) => line.level === "error")).toEqual([last]);
  } finally {
    await worker.stop();
  }
});
