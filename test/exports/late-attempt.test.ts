// A worker presumed dead that comes back: its job was released and run again
// (attempt 2), and then attempt 1 finishes after all. Only the attempt that is
// running may change the export; the late one's progress, failure and success
// change nothing, and its file is discarded.
import { readdir } from "node:fs/promises";
import { beforeAll, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import type { PrompterProcess } from "../support/server.ts";
import { expectedExport } from "./oracle.ts";
import {
  exportFile,
  inTransaction,
  parseCsv,
  readExport,
  requestExport,
  type SignedIn,
  spawnWorker,
  startTestWorker,
  useExportDirPerTest,
  waitUntil,
} from "./support.ts";

const db = useTestDatabase();
let user: SignedIn;
const exportDir = useExportDirPerTest();


beforeAll(async () => {
  user = { role: "app_user", userId: await createUser(db.pool) };
  await db.pool.query("select app_private.generate_demo($1, 20)", [user.userId]);
});

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
      "select app_private.export_succeeded($1, $2, $3, null, 7, 70, $4, 1) as recorded",
      [id, attempt, `judge_scores-${id}-0000000${attempt}.csv`, String(attempt).repeat(64)],
    );
    return rows[0].recorded;
  },
};

it("after attempt 2 has started, attempt 1's late progress, failure and success change nothing; attempt 2's do", async () => {
  // The calls are made here, in the order a comeback makes them; the export's
  // job is spent, so no worker of a later test runs it.
  const id = await requestExport(db.pool, user, "judge_scores");
  await db.pool.query(
    "select graphile_worker.permanently_fail_jobs(array(select id from graphile_worker._private_jobs where payload ->> 'exportId' = $1), 'driven by the test')",
    [id],
  );
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

const waitingFor = (call: string) =>
  waitUntil(
    async () => (await db.pool.query("select from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like $1", [`%${call}%`])).rowCount,
    (count) => count! > 0,
    `the worker waits in ${call}`,
  );

/**
 * Two points to freeze the first worker at (SIGSTOP: as a long GC pause or a
 * suspended VM would; its heartbeat stops, its connections stay), each held
 * still by a lock: right after it has started the export, before it has
 * cleaned up earlier attempts' files; and while it writes its temporary file.
 */
const FREEZE_POINTS = {
  "after it started the export": async (frozen: PrompterProcess, id: () => Promise<string>) => {
    let exportId = "";
    await inTransaction(db.pool, async (rowLock) => {
      exportId = await id();
      await rowLock.query("select from app_public.exports where id = $1 for update", [exportId]);
      await waitingFor("app_private.export_started");
      frozen.child.kill("SIGSTOP");
    });
    // Its call commits now, but the frozen worker does not see the answer yet.
    await waitUntil(() => readExport(db.pool, exportId), (row) => row.status === "running", "attempt 1 has started");
    return { exportId, release: async () => {} };
  },
  "while it writes": async (frozen: PrompterProcess, id: () => Promise<string>) => {
    // agent_effectiveness reads agent_stats: locking it holds the export mid-way, its temporary file open.
    const blocker = await db.pool.connect();
    await blocker.query("begin");
    await blocker.query("lock table app_hidden.agent_stats in access exclusive mode");
    const exportId = await id();
    await waitUntil(() => readdir(exportDir.dir), (names) => names.some((name) => name.endsWith(".partial")), "attempt 1 writes");
    await waitingFor("COPY");
    frozen.child.kill("SIGSTOP");
    const release = async () => {
      await blocker.query("rollback");
      blocker.release();
    };
    return { exportId, release };
  },
};

it.each(Object.keys(FREEZE_POINTS))(
  "a worker frozen %s, whose job another worker ran again, changes nothing and leaves no file when it wakes up",
  { timeout: 60_000 },
  async (point) => {
    const frozen = await spawnWorker(db.url, exportDir.dir, { WORKER_HEARTBEAT_INTERVAL: "1" });
    const { exportId: id, release } = await FREEZE_POINTS[point as keyof typeof FREEZE_POINTS](frozen, () =>
      requestExport(db.pool, user, "agent_effectiveness"),
    );
    const next = await startTestWorker(db.url, exportDir.dir, { WORKER_HEARTBEAT_INTERVAL: "1", WORKER_DEAD_AFTER: "2" });
    try {
      await waitUntil(() => readExport(db.pool, id), (row) => row.attempts === 2, "the second worker has taken the export over");
      await release();
      const done = await waitUntil(() => readExport(db.pool, id), (row) => row.status === "succeeded", "attempt 2 has succeeded");
      expect(done).toMatchObject({ attempts: 2, error_message: null });
      expect(done.file_name).toMatch(new RegExp(`^agent_effectiveness-${id}-2-[0-9a-f]{8}\\.csv$`));
      const finished = await stored(id);

      frozen.child.kill("SIGCONT");
      // Its attempt ends either way: its file was deleted under it by attempt 2 (while it wrote), or it was discarded.
      await waitUntil(
        async () => frozen.output().stdout,
        (stdout) => /export finished after a newer attempt took over|export attempt failed/.test(stdout),
        "the first worker has finished its attempt",
      );
      expect(await stored(id)).toEqual(finished);
      expect(await readdir(exportDir.dir)).toEqual([done.file_name]);
      expect(parseCsv(await exportFile(exportDir.dir, done))).toEqual(
        (await expectedExport(db.pool, user, "agent_effectiveness")).get("agent_effectiveness.csv"),
      );
      expect(frozen.output().stdout).not.toMatch(/"msg":"export succeeded"/);
    } finally {
      await release().catch(() => {});
      frozen.child.kill("SIGCONT");
      await frozen.stop();
      await next.stop();
    }
  },
);
