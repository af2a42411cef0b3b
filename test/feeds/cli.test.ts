// `npx prompter feed add|list|run|pull`: as the user (so the rules apply), with
// a worker in this process; pull copies every written run not yet in the
// directory, checked against its sha256, and nothing twice.
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { useExportWorker } from "../exports/support.ts";
import { asOwner, manifestOf, type Owner } from "./support.ts";

const db = useTestDatabase();
const worker = useExportWorker(db);
let username: string;
let owner: Owner;

beforeAll(async () => {
  username = `feeds_${Date.now()}`;
  owner = { role: "app_user", userId: await createUser(db.pool, { username }) };
  await db.pool.query("select app_private.generate_demo($1, 8)", [owner.userId]);
});

function prompter(...args: string[]) {
  return promisify(execFile)(process.execPath, ["src/cli.ts", "feed", ...args, "--username", username], {
    env: { ...process.env, DATABASE_URL: db.url, EXPORT_DIR: worker.dir },
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

it("adds a feed, runs it, lists it and pulls each run once", async () => {
  // On request only: a schedule would let the worker run it meanwhile.
  const added = await prompter("add", "prompts", "--format", "csv");
  expect(added.code).toBe(0);
  const feedId = Number(/^Created feed (\d+)/.exec(added.stdout)![1]);
  for (const expected of [1, 2]) {
    const ran = await prompter("run", String(feedId), "--wait");
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toContain(`Run ${expected} succeeded`);
    await asOwner(db.pool, owner, (client) => client.query("select app_public.record_run($1)", [{ prompt: `cli ${expected}`, versions: [{ agent: "syntax", text: "x" }] }]));
  }
  const listed = await prompter("list");
  expect(listed.stdout).toMatch(new RegExp(`^${feedId}\\tprompts\\tcsv\\t-\\ton request\\trun 2 succeeded \\(1 rows\\)$`, "m"));

  const dir = path.join(worker.dir, "pulled");
  const pulled = await prompter("pull", String(feedId), "--dir", dir);
  expect(pulled.stdout).toContain("Pulled 2 run(s)");
  for (const run of [1, 2]) {
    expect(await readFile(path.join(dir, String(run), "manifest.json"), "utf8")).toBe(JSON.stringify(await manifestOf(worker.dir, feedId, run), null, 2) + "\n");
    expect((await readdir(path.join(dir, String(run)))).sort()).toEqual(["deleted.csv", "manifest.json", "prompts.csv"]);
  }
  expect(await readFile(path.join(dir, "1", "prompts.csv"), "utf8")).toBe(await readFile(path.join(worker.dir, "feeds", String(feedId), "1", "prompts.csv"), "utf8"));
  await prompter("run", String(feedId), "--wait");
  const again = await prompter("pull", String(feedId), "--dir", dir);
  expect(again.stdout).toContain("Pulled 1 run(s)");
  expect(again.stdout).toContain("(2 there already)");
  // Nine commands, each a process that starts and migrates.
}, 120_000);

it("says what is wrong, with the schema's message", async () => {
  const bad = await prompter("add", "prompts", "--format", "xlsx");
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("Unknown feed format");
  const other = await prompter("run", "999999");
  expect(other.code).toBe(2);
  expect(other.stderr).toContain("There is no feed 999999 of yours");
}, 60_000);
