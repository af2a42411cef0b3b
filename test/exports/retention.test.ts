// The export_retention job (run hourly by the worker's crontab, here queued by
// hand): what it deletes and what it keeps.
import { readdir, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import {
  requestExport,
  type SignedIn,
  useExportWorker,
  waitForExport,
  waitUntil,
} from "./support.ts";

const RETENTION_DAYS = 7;
const db = useTestDatabase();
const exportWorker = useExportWorker(db, { EXPORT_RETENTION_DAYS: String(RETENTION_DAYS) });
const daysAgo = (days: number) => new Date(Date.now() - days * 24 * 3600 * 1000);

it("deletes finished exports older than EXPORT_RETENTION_DAYS with their files, and old files no export refers to; keeps queued and running ones", async () => {
  const user: SignedIn = { role: "app_user", userId: await createUser(db.pool) };
  const exported = async () => waitForExport(db.pool, await requestExport(db.pool, user, "agent_effectiveness"));
  const [expired, recent, expiredFailed, queued, running] = [
    await exported(), await exported(), await exported(), await exported(), await exported(),
  ];
  const age = (id: string, days: number, status: string) =>
    db.pool.query("update app_public.exports set requested_at = $2, status = $3 where id = $1", [id, daysAgo(days), status]);
  // Their files were written just now: for a file an export refers to, the export's age decides.
  await age(expired.id, RETENTION_DAYS + 1, "succeeded");
  await age(recent.id, RETENTION_DAYS - 1, "succeeded");
  await age(expiredFailed.id, RETENTION_DAYS + 1, "failed");
  // Queued and running exports are kept whatever their age: their job still refers to them.
  await age(queued.id, RETENTION_DAYS * 10, "queued");
  await age(running.id, RETENTION_DAYS * 10, "running");
  // Files no export refers to: deleted once older than the retention period.
  const files = {
    orphanOld: "multi_agent_log-999999-0123abcd.csv",
    orphanRecent: "prompt_versions-999998-0123abcd.csv.gz",
    partialOld: "all-999997-0123abcd.zip.partial",
    notOurs: "notes.txt",
  };
  for (const name of Object.values(files)) await writeFile(path.join(exportWorker.dir, name), "x");
  for (const name of [files.orphanOld, files.partialOld, files.notOurs]) {
    await utimes(path.join(exportWorker.dir, name), daysAgo(RETENTION_DAYS + 1), daysAgo(RETENTION_DAYS + 1));
  }

  await db.pool.query("select graphile_worker.add_job('export_retention', '{}')");
  await waitUntil(
    async () => exportWorker.lines.filter((line) => line.message === "export retention"),
    (lines) => lines.length === 1,
    "the retention job has run",
  );

  const { rows } = await db.pool.query<{ id: string }>("select id from app_public.exports order by id");
  expect(rows.map((row) => row.id)).toEqual([recent.id, queued.id, running.id]);
  expect((await readdir(exportWorker.dir)).sort()).toEqual(
    [recent.file_name, queued.file_name, running.file_name, files.orphanRecent, files.notOurs].sort(),
  );
  expect(exportWorker.lines.find((line) => line.message === "export retention")!.fields).toMatchObject({
    deletedExports: 2,
    deletedFiles: 4,
  });
});
