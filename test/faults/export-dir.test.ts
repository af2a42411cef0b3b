// EXPORT_DIR on a small file system of its own (a 1 MiB tmpfs; the tests run
// as root, as CI does, to mount it) that fills up or turns read-only under a
// running worker: the attempt fails with a message that says why, leaves no
// partial file, counts in prompter_export_dir_failures_total, and the export
// succeeds on its retry once the disk takes writes again.
import { execFile } from "node:child_process";
import { open, mkdtemp, readdir, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
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
import { parseMetrics, total } from "../ops/support.ts";

const run = promisify(execFile);
const db = useTestDatabase();
const FILLER = "filler";
let dir: string;
let user: SignedIn;
let worker: Awaited<ReturnType<typeof startTestWorker>>;
/** The files of the exports that have succeeded: all EXPORT_DIR should hold besides the filler. */
const written: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "prompter-small-disk-"));
  await run("mount", ["-t", "tmpfs", "-o", "size=1m", "prompter-test-exports", dir]);
  user = { role: "app_user", userId: await createUser(db.pool) };
  await db.pool.query("select app_private.generate_demo($1, 100)", [user.userId]);
  worker = await startTestWorker(db.url, dir);
});

afterAll(async () => {
  await worker?.stop();
  await run("umount", [dir]).catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

/** Writes a file until the disk is full. */
async function fillDisk(): Promise<void> {
  const file = await open(path.join(dir, FILLER), "w");
  try {
    const chunk = Buffer.alloc(64 * 1024);
    for (;;) await file.write(chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
  } finally {
    await file.close();
  }
}

const failuresCounted = async (code: string) => total(parseMetrics(await worker.metrics.registry.metrics()), "prompter_export_dir_failures_total", { code });

/** Requests an export, waits for its first attempt to fail, and checks what the failure left. */
async function firstAttemptFails(reason: string, code: string): Promise<string> {
  const id = await requestExport(db.pool, user, "all");
  const failed = await waitUntil(() => readExport(db.pool, id), (row) => row.status === "queued" && row.attempts === 1, "the first attempt has failed");
  expect(failed.error_message).toBe(`Attempt 1 of 5 failed (${reason}); the export will be retried shortly.`);
  // No partial file: the directory holds what it held before.
  expect((await readdir(dir)).filter((name) => name !== FILLER).sort()).toEqual(written.sort());
  expect(await failuresCounted(code)).toBe(1);
  const line = worker.lines.find((candidate) => candidate.fields.exportId === Number(id) && candidate.message === "export attempt failed; it will be retried");
  expect(line).toMatchObject({ level: "warn", fields: { exportDir: dir, exportDirError: code, attempt: 1 } });
  return id;
}

async function succeedsOnRetry(id: string): Promise<void> {
  const row = await waitForExport(db.pool, id);
  expect(row).toMatchObject({ status: "succeeded", attempts: 2, error_message: null });
  expect(await exportContents(dir, row)).toEqual(await expectedExport(db.pool, user, "all"));
  written.push(row.file_name!);
  expect((await readdir(dir)).sort()).toEqual(written.sort());
}

it("a full disk fails the attempt cleanly; the retry succeeds once there is space again", async () => {
  await fillDisk();
  const id = await firstAttemptFails("the server's export disk is full", "ENOSPC");
  await unlink(path.join(dir, FILLER));
  await succeedsOnRetry(id);
});

it("a read-only EXPORT_DIR fails the attempt cleanly; the retry succeeds once it is writable again", async () => {
  await run("mount", ["-o", "remount,ro", dir]);
  let id: string;
  try {
    id = await firstAttemptFails("the server's export directory is read-only", "EROFS");
  } finally {
    await run("mount", ["-o", "remount,rw", dir]);
  }
  await succeedsOnRetry(id);
});
