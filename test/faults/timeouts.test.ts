// A hung query cannot hold an export slot forever: an export whose COPY waits
// (here for a lock) longer than EXPORT_STATEMENT_TIMEOUT fails its attempt and
// frees the slot, and succeeds on its retry once the database answers again.
import { afterAll, beforeAll, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createUser, useTestDatabase } from "../support/db.ts";
import {
    exportContents,
  readExport,
  requestExport,
  type SignedIn,
  startTestWorker,
  waitForExport,
  waitUntil,
} from "../exports/support.ts";
import { expectedExport } from "../exports/oracle.ts";

const db = useTestDatabase();
let dir: string;
let user: SignedIn;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "prompter-exports-"));
  user = { role: "app_user", userId: await createUser(db.pool) };
  await db.pool.query("select app_private.generate_demo($1, 20)", [user.userId]);
});

afterAll(() => rm(dir, { recursive: true, force: true }));

it("an export stuck longer than EXPORT_STATEMENT_TIMEOUT fails its attempt, frees its slot, and succeeds on the retry", async () => {
  // One slot: the next export can only run once the stuck one has given it up.
  const worker = await startTestWorker(db.url, dir, { EXPORT_STATEMENT_TIMEOUT: "1", WORKER_CONCURRENCY: "1" });
  const blocker = await db.pool.connect();
  try {
    await blocker.query("begin");
    await blocker.query("lock table app_hidden.agent_stats in access exclusive mode");
    const stuck = await requestExport(db.pool, user, "all");
    const other = await requestExport(db.pool, user, "judge_scores");
    const failed = await waitUntil(() => readExport(db.pool, stuck), (row) => row.status === "queued" && row.attempts === 1, "the stuck attempt has failed");
    expect(failed.error_message).toBe("Attempt 1 of 5 failed; the export will be retried shortly.");
    const line = worker.lines.find((candidate) => candidate.fields.exportId === Number(stuck) && candidate.message === "export attempt failed; it will be retried");
    expect(line?.fields.error).toBe("canceling statement due to statement timeout");
    expect(await waitForExport(db.pool, other)).toMatchObject({ status: "succeeded", attempts: 1 });
    await blocker.query("rollback");
    const retried = await waitForExport(db.pool, stuck);
    expect(retried).toMatchObject({ status: "succeeded", attempts: 2 });
    expect(await exportContents(dir, retried)).toEqual(await expectedExport(db.pool, user, "all"));
  } finally {
    await blocker.query("rollback").catch(() => {});
    blocker.release();
    await worker.stop();
  }
});
