// A run that fails anywhere is written again by its retry, with no gap and no
// duplicate: mid-COPY, at the end of a file, writing the manifest, and after
// the manifest before the run is recorded (the retry then keeps the written
// run as it is). Two jobs of one run write it once. Most crashes are simulated
// in this process (a storage whose save fails part-way, a pool whose record of
// success fails); the last tests SIGKILL a worker process mid-run and at the
// record, and let the next worker take the run over.
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { inTransaction, spawnWorker, startTestWorker, waitUntil } from "../exports/support.ts";
import {
  asOwner,
  createFeed,
  failingStorage,
  manifestOf,
  type Owner,
  readRun,
  requestRun,
  runFeed,
  runTask,
  taskContext,
  warehouse,
} from "./support.ts";

const db = useTestDatabase();
let dir: string;
let owner: Owner;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "prompter-feeds-"));
  owner = { role: "app_user", userId: await createUser(db.pool) };
  await db.pool.query("select app_private.generate_demo($1, 40)", [owner.userId]);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Versions of the owner as id -> text, recomputed from the table. */
async function versions(): Promise<Map<string, string>> {
  const { rows } = await db.pool.query<{ id: string; text: string }>("select id::text, text from app_public.prompt_versions where user_id = $1", [owner.userId]);
  return new Map(rows.map((row) => [row.id, row.text]));
}

async function appliedVersions(feedId: number, runs: number): Promise<Map<string, string>> {
  return new Map((await warehouse(dir, feedId, runs, "id")).map((row) => [String(row.id), String(row.text)]));
}

/** Writes between the attempts: a new prompt with its versions, an edited version, a deleted prompt. */
async function writeSomething(label: string) {
  await asOwner(db.pool, owner, async (client) => {
    await client.query("select app_public.record_run($1)", [
      { prompt: `crash ${label}`, versions: [{ agent: "syntax", text: `syntax ${label}` }, { agent: "domain", text: `domain ${label}` }], best_version: 0 },
    ]);
    await client.query("update app_public.prompt_versions set text = text || ' (edited)' where id = (select min(id) from app_public.prompt_versions where user_id = $1 and text not like '%edited%')", [owner.userId]);
    await client.query("delete from app_public.prompts where id = (select min(id) from app_public.prompts where user_id = $1)", [owner.userId]);
  });
}

/** A pool that fails recording the run's success, as a crash right after the manifest would. */
function failingToRecord(pool: pg.Pool): pg.Pool {
  return new Proxy(pool, {
    get(target, property) {
      if (property === "query") {
        return (text: unknown, ...rest: unknown[]) => {
          if (typeof text === "string" && text.includes("feed_run_succeeded")) return Promise.reject(new Error("simulated crash before the run is recorded"));
          return (target.query as (...args: unknown[]) => unknown)(text, ...rest);
        };
      }
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe.each([
  { point: "mid-COPY of the data file", storage: () => failingStorage(dir, /prompt_versions\.csv$/, 200) },
  { point: "at the end of the data file", storage: () => failingStorage(dir, /prompt_versions\.csv$/, Number.MAX_SAFE_INTEGER) },
  { point: "writing the deleted keys", storage: () => failingStorage(dir, /deleted\.csv$/, 0) },
  { point: "writing the manifest", storage: () => failingStorage(dir, /manifest\.json$/, 10) },
])("a crash $point", ({ storage }) => {
  it("is followed by a retry that writes the run whole, and the runs still add up to the database", async () => {
    const feedId = await createFeed(db.pool, owner, { kind: "prompt_versions", format: "csv" });
    await runFeed(db.pool, owner, feedId, dir);
    await writeSomething(`${feedId} before`);
    const run = await requestRun(db.pool, owner, feedId);
    const failing = storage();
    await expect(runTask(taskContext(db.pool, dir, failing), feedId, run, 1)).rejects.toThrow(/simulated crash/);
    expect(failing.failures).toBe(1);
    expect(await readRun(db.pool, feedId, run)).toMatchObject({ status: "running", attempts: 1 });
    const files = await readdir(path.join(dir, "feeds", String(feedId), String(run))).catch(() => []);
    expect(files).not.toContain("manifest.json");
    expect(files.filter((name) => name.endsWith(".partial"))).toEqual([]);

    await writeSomething(`${feedId} between`);
    await runTask(taskContext(db.pool, dir), feedId, run, 2);
    const row = await readRun(db.pool, feedId, run);
    expect(row).toMatchObject({ status: "succeeded", attempts: 2 });
    expect((await manifestOf(dir, feedId, run)).snapshot.until).toBe(row.snapshot);
    // The retry took a snapshot of its own: the writes between the attempts are in this run.
    expect(await appliedVersions(feedId, run)).toEqual(await versions());
    await writeSomething(`${feedId} after`);
    await runFeed(db.pool, owner, feedId, dir);
    expect(await appliedVersions(feedId, run + 1)).toEqual(await versions());
  });
});

it("a crash after the manifest, before the run is recorded: the retry records the written run as it is", async () => {
  const feedId = await createFeed(db.pool, owner, { kind: "prompt_versions", format: "jsonl" });
  await runFeed(db.pool, owner, feedId, dir);
  await writeSomething(`${feedId} before`);
  const run = await requestRun(db.pool, owner, feedId);
  await expect(runTask({ ...taskContext(db.pool, dir), pool: failingToRecord(db.pool) }, feedId, run, 1)).rejects.toThrow(/simulated crash/);
  const manifestFile = path.join(dir, "feeds", String(feedId), String(run), "manifest.json");
  const published = await readFile(manifestFile, "utf8");
  // A consumer reads run 2 now, then more is written before the retry.
  const seenByConsumer = await appliedVersions(feedId, run);
  await writeSomething(`${feedId} between`);

  await runTask(taskContext(db.pool, dir), feedId, run, 2);
  expect(await readFile(manifestFile, "utf8")).toBe(published);
  const row = await readRun(db.pool, feedId, run);
  expect(row.status).toBe("succeeded");
  expect(row.snapshot).toBe(JSON.parse(published).snapshot.until);
  expect(await appliedVersions(feedId, run)).toEqual(seenByConsumer);
  // What was written between the attempts comes in the next run, once.
  await runFeed(db.pool, owner, feedId, dir);
  expect(await appliedVersions(feedId, run + 1)).toEqual(await versions());
});

it("two jobs of one run write it once: the second waits for the first and finds it written", async () => {
  const feedId = await createFeed(db.pool, owner, { kind: "prompt_versions", format: "csv" });
  await runFeed(db.pool, owner, feedId, dir);
  await writeSomething(`${feedId} race`);
  const run = await requestRun(db.pool, owner, feedId);
  const context = taskContext(db.pool, dir);
  await Promise.all([runTask(context, feedId, run, 1), runTask(context, feedId, run, 2)]);
  const row = await readRun(db.pool, feedId, run);
  expect(row.status).toBe("succeeded");
  // The manifest in storage is the one the database recorded.
  expect((await manifestOf(dir, feedId, run)).snapshot.until).toBe(row.snapshot);
  await writeSomething(`${feedId} race after`);
  await runFeed(db.pool, owner, feedId, dir);
  expect(await appliedVersions(feedId, run + 1)).toEqual(await versions());
});

/** What a database does when it notices a killed client's connections: ends their backends, rolling back what they were doing. */
const endBackendsOfKilledWorker = () =>
  db.pool.query(
    "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and application_name like 'prompter-worker%' and pid <> pg_backend_pid()",
  );

/** The next worker releases the killed one's job once its heartbeat is silent, and runs it again. */
async function recoverWithNextWorker(feedId: number, run: number) {
  const worker = await startTestWorker(db.url, dir, { WORKER_HEARTBEAT_INTERVAL: "1", WORKER_DEAD_AFTER: "2" });
  try {
    await waitUntil(() => readRun(db.pool, feedId, run), (row) => row.status === "succeeded", `run ${run} of feed ${feedId} has been written by the next worker`);
    return worker.lines.filter((line) => line.fields.feedId === feedId);
  } finally {
    await worker.stop();
  }
}

const runFolder = (feedId: number, run: number) => path.join(dir, "feeds", String(feedId), String(run));

it("a worker SIGKILLed mid-run (its data file written, the deleted keys' file open): the next worker writes the run whole over what it left", async () => {
  const feedId = await createFeed(db.pool, owner, { kind: "prompt_versions", format: "csv" });
  await runFeed(db.pool, owner, feedId, dir);
  await writeSomething(`${feedId} before the kill`);
  const child = await spawnWorker(db.url, dir);
  let run = 0;
  await inTransaction(db.pool, async (blocker) => {
    // Deterministic: the deleted keys are read from tombstones, after the data file.
    await blocker.query("lock table app_hidden.tombstones in access exclusive mode");
    run = await requestRun(db.pool, owner, feedId);
    await waitUntil(() => readdir(runFolder(feedId, run)).catch(() => [] as string[]),
      (names) => names.includes("prompt_versions.csv") && names.includes("deleted.csv.partial"), "the run has written its data file and opened the next");
    child.child.kill("SIGKILL");
    await child.exited;
    await endBackendsOfKilledWorker();
  });
  expect(await readRun(db.pool, feedId, run)).toMatchObject({ status: "running", attempts: 1 });
  await writeSomething(`${feedId} after the kill`);

  const lines = await recoverWithNextWorker(feedId, run);
  expect(await readRun(db.pool, feedId, run)).toMatchObject({ status: "succeeded", attempts: 2 });
  expect((await readdir(runFolder(feedId, run))).sort()).toEqual(["deleted.csv", "manifest.json", "prompt_versions.csv"]);
  expect(await appliedVersions(feedId, run)).toEqual(await versions());
  expect(lines.filter((line) => line.message === "feed run succeeded")).toHaveLength(1);
});

it("a worker SIGKILLed after writing the manifest, before recording the run: the next worker records the written run as it is", async () => {
  const feedId = await createFeed(db.pool, owner, { kind: "prompt_versions", format: "jsonl" });
  await runFeed(db.pool, owner, feedId, dir);
  await writeSomething(`${feedId} before the kill`);
  const child = await spawnWorker(db.url, dir);
  let run = 0;
  await inTransaction(db.pool, async (rowLock) => {
    run = await requestRun(db.pool, owner, feedId);
    await waitUntil(() => readRun(db.pool, feedId, run), (row) => row.status === "running" && row.snapshot !== null, "the run has taken its snapshot");
    // Deterministic: the run cannot be recorded while this row lock is held.
    await rowLock.query("select from app_public.feed_runs where feed_id = $1 and number = $2 for update", [feedId, run]);
    await waitUntil(() => readdir(runFolder(feedId, run)).catch(() => [] as string[]), (names) => names.includes("manifest.json"), "the manifest is written");
    await waitUntil(
      async () => (await db.pool.query("select from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%feed_run_succeeded%'")).rowCount,
      (count) => count! > 0,
      "the worker waits to record the run",
    );
    child.child.kill("SIGKILL");
    await child.exited;
    await endBackendsOfKilledWorker();
  });
  const published = await readFile(path.join(runFolder(feedId, run), "manifest.json"), "utf8");
  const seenByConsumer = await appliedVersions(feedId, run);
  await writeSomething(`${feedId} after the kill`);

  const lines = await recoverWithNextWorker(feedId, run);
  const row = await readRun(db.pool, feedId, run);
  expect(row).toMatchObject({ status: "succeeded", attempts: 2, snapshot: JSON.parse(published).snapshot.until });
  expect(await readFile(path.join(runFolder(feedId, run), "manifest.json"), "utf8")).toBe(published);
  expect(lines.some((line) => line.message.startsWith("feed run found written by an earlier attempt"))).toBe(true);
  expect(await appliedVersions(feedId, run)).toEqual(seenByConsumer);
  await runFeed(db.pool, owner, feedId, dir);
  expect(await appliedVersions(feedId, run + 1)).toEqual(await versions());
});
