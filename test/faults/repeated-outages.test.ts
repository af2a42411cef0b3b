// The worker's recovery (src/worker.ts) when it fails more than once: the
// database stays down longer than the first restart delays, so several restarts
// in a row fail before one works, with delays that grow; and the database goes
// down again and again, each time after the worker has recovered from the last.
// After every outage the same worker process takes exports again, without a
// restart by hand. A PostgreSQL cluster of the test's own, stopped and started
// while an export runs (an idle runner rides out an outage by itself; one that
// loses the database mid-job stops, and the worker must replace it).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createUser } from "../support/db.ts";
import { readExport, requestExport, startTestWorker, type SignedIn } from "../exports/support.ts";
import { startControlledPostgres, within, type ControlledPostgres } from "./support.ts";

// Longer than the first two restart delays (1 s, then 2 s): at least two restarts fail in a row.
const OUTAGE_MS = 4500;
const OUTAGES = 3;

let database: ControlledPostgres;
let exportDir: string;
let user: SignedIn;
let worker: Awaited<ReturnType<typeof startTestWorker>>;

beforeAll(async () => {
  database = await startControlledPostgres();
  exportDir = await mkdtemp(path.join(tmpdir(), "prompter-exports-"));
  user = { role: "app_user", userId: await createUser(database.pool) };
  await database.pool.query("select app_private.generate_demo($1, 5)", [user.userId]);
  worker = await startTestWorker(database.url, exportDir, { WORKER_HEARTBEAT_INTERVAL: "1", WORKER_DEAD_AFTER: "10m" });
});

afterAll(async () => {
  await worker?.stop();
  await database?.destroy();
  if (exportDir) await rm(exportDir, { recursive: true, force: true });
});

/** Requests an export once the database takes requests again; resolves when the worker has run it. */
async function exportRuns(): Promise<void> {
  const id = await within(30, "the database takes an export request", () => requestExport(database.pool, user, "multi_agent_log"));
  const row = await within(60, `export ${id} has run`, () => readExport(database.pool, id), (row) => row.status !== "queued" && row.status !== "running");
  expect(row).toMatchObject({ status: "succeeded", error_message: null });
}

/** Requests an "all" export and holds it halfway (its last file reads agent_stats, locked here); its id and the lock's holder. */
async function exportHeldHalfway(): Promise<{ id: string; blocker: pg.PoolClient }> {
  const blocker = await database.pool.connect();
  await blocker.query("begin");
  await blocker.query("lock table app_hidden.agent_stats in access exclusive mode");
  const id = await requestExport(database.pool, user, "all");
  await within(30, `export ${id} waits for the lock halfway`, async () =>
    (await database.pool.query("select from pg_stat_activity where application_name like $1 and wait_event_type = 'Lock'", [`prompter-worker export=${id} %`])).rowCount === 1);
  return { id, blocker };
}

const messages = (message: string) => worker.lines.filter((line) => line.message === message);

const failedRestartDelays = () => messages("could not restart the worker runner; retrying").map((line) => line.fields.retryInMs as number);

it(`recovers from ${OUTAGES} outages in a row, each longer than the first restart delays`, { timeout: 300_000 }, async () => {
  await exportRuns();
  let recoveredAt = Date.now();
  for (let outage = 1; outage <= OUTAGES; outage++) {
    const delaysBefore = failedRestartDelays();
    const failedBefore = delaysBefore.length;
    const { id: held, blocker } = await exportHeldHalfway();
    const ranMs = Date.now() - recoveredAt;
    await database.stop();
    // Only now: the lock is the database's to drop, so the export cannot finish before the outage.
    blocker.release(true);
    await within(30, "the worker's runner has stopped", async () => messages("worker runner stopped unexpectedly (database connection lost?); starting a new one").length === outage);
    await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
    await database.start();
    await within(60, `the worker has a runner again after outage ${outage}`, async () => messages("worker runner restarted").length === outage);
    recoveredAt = Date.now();
    // A runner that ran less than a minute (HEALTHY_RUN_MS) was not healthy: its restarts go on from
    // the delay the last ones reached, never from the first again (checked when the run was clearly shorter).
    if (outage > 1 && ranMs < 30_000) {
      for (const delay of failedRestartDelays().slice(failedBefore)) expect(delay).toBeGreaterThanOrEqual(Math.max(...delaysBefore));
    }
    const retried = await within(60, `export ${held} has run again`, () => readExport(database.pool, held), (row) => row.status === "succeeded");
    expect(retried.attempts).toBeGreaterThan(1);
    await exportRuns();
    expect(messages("worker runner restarted")).toHaveLength(outage);
    // The first time, restarts failed while the database was down, and the worker went on trying.
    // (Later outages follow a short run, so they start from the longer delay the last one reached.)
    if (outage === 1) expect(messages("could not restart the worker runner; retrying").length - failedBefore).toBeGreaterThanOrEqual(2);
  }
  // The delays grew while restarts kept failing, and never beyond the last (10 s).
  const delays = failedRestartDelays();
  expect(delays.slice(0, 2)).toEqual([2000, 4000]);
  expect(Math.max(...delays)).toBeLessThanOrEqual(10_000);
});
