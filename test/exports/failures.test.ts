// A worker process SIGKILLed at the two points where a crash could leave a file
// behind: while it writes (before the rename) and after the rename, before the
// export records the file. Nobody ever sees a partial or orphaned file (no
// export refers to one, and the next attempt deletes it), and the export
// succeeds once. (An export that keeps failing until its last attempt is in
// test/ops/alerts.test.ts, with the alert it raises.)
import { readdir } from "node:fs/promises";
import type { PoolClient } from "pg";
import { beforeAll, expect, it } from "vitest";
import { EXPORT_FILE_NAME } from "../../src/storage/index.ts";
import { createUser, useTestDatabase } from "../support/db.ts";
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
  unzip,
  useExportDirPerTest,
  waitUntil,
} from "./support.ts";

const db = useTestDatabase();
const exportDir = useExportDirPerTest();
let user: SignedIn;

beforeAll(async () => {
  user = { role: "app_user", userId: await createUser(db.pool) };
  await db.pool.query("select app_private.generate_demo($1, 200)", [user.userId]);
});

/** agent_stats is read by agent_effectiveness only (the zip's last file): locking it holds an export there. */
const holdAtAgentStats = (client: PoolClient) => client.query("lock table app_hidden.agent_stats in access exclusive mode");

/** What a database does when it notices a killed client's connections: ends their backends, rolling back what they were doing. */
const endBackendsOfKilledWorker = () =>
  db.pool.query(
    "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and application_name like 'prompter-worker%' and pid <> pg_backend_pid()",
  );

/** The next worker releases the killed one's job once its heartbeat is silent, and runs it again; resolves when the job is done. */
async function recoverWithNextWorker(id: string) {
  const worker = await startTestWorker(db.url, exportDir.dir, { WORKER_HEARTBEAT_INTERVAL: "1", WORKER_DEAD_AFTER: "2" });
  try {
    await waitUntil(
      async () => (await db.pool.query("select from graphile_worker.jobs where task_identifier = 'export'")).rowCount,
      (jobs) => jobs === 0,
      "the released job has run again",
    );
    return { row: await readExport(db.pool, id), lines: worker.lines.filter((line) => line.fields.exportId === Number(id)) };
  } finally {
    await worker.stop();
  }
}

it("killed while writing (before the rename): its temporary file is never an export's file, and the retry deletes it", async () => {
  const child = await spawnWorker(db.url, exportDir.dir);
  let id = "";
  let partial = "";
  await inTransaction(db.pool, async (blocker) => {
    await holdAtAgentStats(blocker);
    id = await requestExport(db.pool, user, "all");
    // Deterministic: the zip's first three files are written, its last waits for the lock.
    [partial] = await waitUntil(
      () => readdir(exportDir.dir),
      (names) => names.length === 1 && names[0].endsWith(".zip.partial"),
      "the export has written part of its zip",
    );
    child.child.kill("SIGKILL");
    await child.exited;
  });
  expect(partial).toMatch(EXPORT_FILE_NAME);
  expect(await readExport(db.pool, id)).toMatchObject({ status: "running", attempts: 1, file_name: null });
  expect(await readdir(exportDir.dir)).toEqual([partial]);

  const { row, lines } = await recoverWithNextWorker(id);
  expect(row).toMatchObject({ status: "succeeded", attempts: 2, error_message: null });
  expect(await readdir(exportDir.dir)).toEqual([row.file_name]);
  const files = unzip(await exportFile(exportDir.dir, row));
  const expected = await expectedExport(db.pool, user, "all");
  expect([...files].map(([name, data]) => [name, parseCsv(data)])).toEqual([...expected]);
  expect(lines.filter((line) => line.message === "export succeeded")).toHaveLength(1);
  expect(child.output().stdout).not.toContain("export succeeded");
});

it.each([
  ["the database ends its connection first: its call is rolled back, and the retry deletes the renamed file", true],
  ["its last call commits after all: the renamed file is the export's, and the retry does nothing", false],
])("killed after the rename, before recording the file; %s", async (_case, connectionEnded) => {
  const child = await spawnWorker(db.url, exportDir.dir);
  let id = "";
  let renamed = "";
  await inTransaction(db.pool, async (rowLock) => {
    await inTransaction(db.pool, async (blocker) => {
      await holdAtAgentStats(blocker);
      id = await requestExport(db.pool, user, "agent_effectiveness");
      await waitUntil(() => readExport(db.pool, id), (row) => row.status === "running", "the export is running");
      // Deterministic: the export cannot record anything while this row lock is held.
      await rowLock.query("select from app_public.exports where id = $1 for update", [id]);
    });
    // The export writes and renames its file, then waits for the row lock to record it.
    [renamed] = await waitUntil(() => readdir(exportDir.dir), (names) => names.length === 1 && !names[0].endsWith(".partial"), "the file is renamed");
    await waitUntil(
      async () => (await db.pool.query("select from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%app_private.export_%'")).rowCount,
      (count) => count! > 0,
      "the worker waits to record the export",
    );
    child.child.kill("SIGKILL");
    await child.exited;
    if (connectionEnded) await endBackendsOfKilledWorker();
  });
  expect(renamed).toMatch(EXPORT_FILE_NAME);
  // No export refers to the renamed file unless its success was recorded.
  if (connectionEnded) {
    expect(await readExport(db.pool, id)).toMatchObject({ status: "running", attempts: 1, file_name: null });
  } else {
    const recorded = await waitUntil(() => readExport(db.pool, id), (row) => row.status !== "running", "the orphaned call has committed");
    expect(recorded).toMatchObject({ status: "succeeded", attempts: 1, file_name: renamed });
  }
  expect(await readdir(exportDir.dir)).toEqual([renamed]);

  const { row, lines } = await recoverWithNextWorker(id);
  expect(row).toMatchObject({ status: "succeeded", attempts: connectionEnded ? 2 : 1, error_message: null });
  expect(await readdir(exportDir.dir)).toEqual([row.file_name]);
  expect(row.file_name === renamed).toBe(!connectionEnded);
  expect(parseCsv(await exportFile(exportDir.dir, row))).toEqual((await expectedExport(db.pool, user, "agent_effectiveness")).get("agent_effectiveness.csv"));
  expect(lines.filter((line) => line.message === "export succeeded")).toHaveLength(connectionEnded ? 1 : 0);
  expect(child.output().stdout).not.toContain("export succeeded");
});
