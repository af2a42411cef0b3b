// A worker presumed dead that comes back: its job was released and run again
// (attempt 2), and then attempt 1 finishes after all. Only the attempt that is
// running may change the export; the late one's progress, failure and success
// change nothing, and its file is discarded.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { expectedExport } from "./oracle.ts";
import { exportFile, parseCsv, readExport, requestExport, type SignedIn, spawnWorker, startTestWorker, waitUntil } from "./support.ts";

const db = useTestDatabase();
let user: SignedIn;
let exportDir: string;

beforeAll(async () => {
  exportDir = await mkdtemp(path.join(tmpdir(), "prompter-exports-"));
  user = { role: "app_user", userId: await createUser(db.pool) };
  await db.pool.query("select app_private.generate_demo($1, 20)", [user.userId]);
});
afterAll(() => rm(exportDir, { recursive: true, force: true }));

/** The export's row as stored, every column. */
const stored = async (id: string) => (await db.pool.query("select * from app_public.exports where id = $1", [id])).rows[0];

/** The worker's calls, as src/tasks/export.ts makes them. */
const worker = {
  started: (id: string, attempt: number) => db.pool.query("select app_private.export_started($1, $2)", [id, attempt]),
  progress: (id: string, attempt: number, rows: number) =>
    db.pool.query("select app_private.export_progress($1, $2, $3)", [id, attempt, rows]),
  failed: (id: string, attempt: number, final: boolean) =>
    db.pool.query("select app_private.export_failed($1, $2, $3, $4)", [id, attempt, `attempt ${attempt} failed late`, final]),
  async succeeded(id: string, attempt: number) {
    const { rows } = await db.pool.query<{ recorded: boolean }>(
      "select app_private.export_succeeded($1, $2, $3, 7, 70, $4, 1) as recorded",
      [id, attempt, `judge_scores-${id}-0000000${attempt}.csv`, String(attempt).repeat(64)],
    );
    return rows[0].recorded;
  },
};

it("after attempt 2 has started, attempt 1's late progress, failure and success change nothing; attempt 2's do", async () => {
  // No worker runs in this test: the calls are made here, in the order a comeback makes them.
  const id = await requestExport(db.pool, user, "judge_scores");
  await worker.started(id, 1);
  await worker.progress(id, 1, 5);
  await worker.started(id, 2);
  const takenOver = await stored(id);
  expect(takenOver).toMatchObject({ status: "running", attempts: 2, progress_rows: "0", file_name: null });

  await worker.progress(id, 1, 9);
  expect(await stored(id)).toEqual(takenOver);
  await worker.failed(id, 1, false);
  expect(await stored(id)).toEqual(takenOver);
  await worker.failed(id, 1, true);
  expect(await stored(id)).toEqual(takenOver);
  expect(await worker.succeeded(id, 1)).toBe(false);
  expect(await stored(id)).toEqual(takenOver);

  // The running attempt's calls do count.
  await worker.progress(id, 2, 3);
  expect(await stored(id)).toMatchObject({ status: "running", attempts: 2, progress_rows: "3" });
  expect(await worker.succeeded(id, 2)).toBe(true);
  const finished = await stored(id);
  expect(finished).toMatchObject({ status: "succeeded", attempts: 2, file_name: `judge_scores-${id}-00000002.csv`, rows: "7" });

  // Once it has succeeded, no late call of either attempt changes it.
  await worker.progress(id, 1, 9);
  await worker.failed(id, 1, true);
  await worker.failed(id, 2, true);
  expect(await worker.succeeded(id, 1)).toBe(false);
  expect(await worker.succeeded(id, 2)).toBe(false);
  expect(await stored(id)).toEqual(finished);
});

it("a worker frozen mid-export, whose job another worker ran again, discards its file when it wakes up", { timeout: 60_000 }, async () => {
  const frozen = await spawnWorker(db.url, exportDir, { WORKER_HEARTBEAT_INTERVAL: "1" });
  const blocker = await db.pool.connect();
  let id: string;
  const next = await (async () => {
    try {
      // agent_effectiveness reads agent_stats: locking it holds the export mid-way.
      await blocker.query("begin");
      await blocker.query("lock table app_hidden.agent_stats in access exclusive mode");
      id = await requestExport(db.pool, user, "agent_effectiveness");
      await waitUntil(() => readExport(db.pool, id), (row) => row.status === "running", "the first worker runs the export");
      // Frozen (as by a long GC pause or a suspended VM): its heartbeat stops, its connections stay.
      frozen.child.kill("SIGSTOP");
      const next = await startTestWorker(db.url, exportDir, { WORKER_HEARTBEAT_INTERVAL: "1", WORKER_DEAD_AFTER: "2" });
      await waitUntil(() => readExport(db.pool, id), (row) => row.attempts === 2, "the second worker has taken the export over");
      return next;
    } finally {
      await blocker.query("rollback");
      blocker.release();
    }
  })();
  try {
    const done = await waitUntil(() => readExport(db.pool, id), (row) => row.status === "succeeded", "attempt 2 has succeeded");
    expect(done).toMatchObject({ attempts: 2, error_message: null });
    const finished = await stored(id!);

    frozen.child.kill("SIGCONT");
    await waitUntil(
      async () => frozen.output().stdout,
      (stdout) => stdout.includes("export finished after a newer attempt took over; discarded its file"),
      "the first worker has finished its attempt",
    );
    expect(await stored(id!)).toEqual(finished);
    expect(await readdir(exportDir)).toEqual([done.file_name]);
    expect(parseCsv(await exportFile(exportDir, done))).toEqual((await expectedExport(db.pool, user, "agent_effectiveness")).get("agent_effectiveness.csv"));
  } finally {
    frozen.child.kill("SIGCONT");
    await frozen.stop();
    await next.stop();
  }
});
