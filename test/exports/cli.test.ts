// `npx prompter export`: queues as the user (so the rules apply), waits, copies;
// `npx prompter worker`: stops cleanly.
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { exportFile, readExport, spawnWorker, useExportWorker } from "./support.ts";

const db = useTestDatabase();
const exportWorker = useExportWorker(db);
let username: string;

beforeAll(async () => {
  username = `cli_${Date.now()}`;
  const userId = await createUser(db.pool, { username });
  await db.pool.query("select app_private.generate_demo($1, 5)", [userId]);
});

function prompter(...args: string[]) {
  return promisify(execFile)(process.execPath, ["src/cli.ts", ...args], {
    env: { ...process.env, DATABASE_URL: db.url, EXPORT_DIR: exportWorker.dir },
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

it("queues an export as the user, waits for the worker and copies the file to --out", async () => {
  const out = path.join(exportWorker.dir, "copy.csv.gz");
  const result = await prompter("export", "multi_agent_log", "--username", username, "--gzip", "--out", out);
  expect(result.code).toBe(0);
  const id = /^Queued export (\d+) \(multi_agent_log\)/.exec(result.stdout)![1];
  const row = await readExport(db.pool, id);
  expect(row).toMatchObject({ status: "succeeded", rows: "5", stale: false });
  expect(row.file_name).toMatch(/\.csv\.gz$/);
  expect(result.stdout).toContain(`sha256 ${row.sha256}`);
  expect(await readFile(out)).toEqual(await exportFile(exportWorker.dir, row));
});

it("--format and the filter flags: the user's matching rows, in that format; a bad filter is refused and queues nothing", async () => {
  const out = path.join(exportWorker.dir, "versions.parquet");
  const result = await prompter("export", "prompt_versions", "--username", username, "--format", "parquet", "--agents", "syntax,domain",
    "--created-after", "2000-01-01T00:00:00Z", "--out", out);
  expect(result.code).toBe(0);
  const id = /^Queued export (\d+) \(prompt_versions\) as parquet/.exec(result.stdout)![1];
  const row = await readExport(db.pool, id);
  expect(row.file_name).toMatch(/\.parquet$/);
  expect(await readFile(out)).toEqual(await exportFile(exportWorker.dir, row));
  const { rows: [{ n }] } = await db.pool.query(
    "select count(*)::int as n from app_public.prompt_versions v join app_public.users u on u.id = v.user_id where u.username = $1 and v.source in ('syntax', 'domain')",
    [username]);
  expect(n).toBeGreaterThan(0);
  expect(Number(row.rows)).toBe(n);

  const before = (await db.pool.query("select count(*)::int as n from app_public.exports")).rows[0].n;
  const backwards = await prompter("export", "judge_scores", "--username", username, "--format", "jsonl",
    "--created-after", "2025-02-01", "--created-before", "2025-01-01");
  expect(backwards.code).toBe(2);
  expect(backwards.stderr).toMatch(/^prompter export: created_after \(2025-02-01\) must be before created_before/);
  const excelJsonl = await prompter("export", "judge_scores", "--username", username, "--format", "jsonl", "--excel");
  expect(excelJsonl.stderr).toMatch(/^prompter export: Options not allowed for jsonl exports: excel/);
  expect((await db.pool.query("select count(*)::int as n from app_public.exports")).rows[0].n).toBe(before);
});

it("creates the directory of --out when it is missing", async () => {
  const out = path.join(exportWorker.dir, "new", "deeper", "log.csv");
  const result = await prompter("export", "multi_agent_log", "--username", username, "--out", out);
  expect(result.code).toBe(0);
  const id = /^Queued export (\d+)/.exec(result.stdout)![1];
  expect(await readFile(out)).toEqual(await exportFile(exportWorker.dir, await readExport(db.pool, id)));
});

it("says what is wrong when --out cannot be written, and queues nothing", async () => {
  const blocked = path.join(exportWorker.dir, "a-file");
  await writeFile(blocked, "not a directory");
  const before = (await db.pool.query("select count(*)::int as n from app_public.exports")).rows[0].n;
  const result = await prompter("export", "multi_agent_log", "--username", username, "--out", path.join(blocked, "log.csv"));
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(/^prompter export: Cannot create the directory of --out .*a-file\/log\.csv/);
  expect((await db.pool.query("select count(*)::int as n from app_public.exports")).rows[0].n).toBe(before);
});

it("reports the rules' errors without a stack trace", async () => {
  const unknownKind = await prompter("export", "everything", "--username", username);
  expect(unknownKind.code).toBe(2);
  expect(unknownKind.stderr).toMatch(/^prompter export: Unknown export kind "everything"/);
  const unknownUser = await prompter("export", "all", "--username", "nobody_here");
  expect(unknownUser.code).toBe(2);
  expect(unknownUser.stderr).toContain('No user "nobody_here"');
  expect(unknownKind.stderr + unknownUser.stderr).not.toMatch(/^\s+at /m);
});

it("`npx prompter worker` stops cleanly on SIGTERM", async () => {
  const worker = await spawnWorker(db.url, exportWorker.dir);
  expect(await worker.stop()).toBe(0);
});
