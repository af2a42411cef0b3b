// Ctrl-C on `npm start` with the embedded PostgreSQL: the terminal sends SIGINT
// to the whole foreground process group. Only prompter may stop the database,
// after its requests and jobs have finished, so an export running at that
// moment succeeds, nothing is logged as an error, and the worker signs off.
import { execFile } from "node:child_process";
import { chmod, mkdtemp, readdir, rm } from "node:fs/promises";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import pg from "pg";
import { startEmbeddedPostgres } from "../../src/db/embedded.ts";
import { requestExport, waitUntil } from "../exports/support.ts";
import { freePort } from "../support/ports.ts";
import { startServer, type RunningServer } from "../support/server.ts";

let dir: string;
let server: RunningServer | undefined;
let port: number;

beforeAll(async () => {
  port = await freePort();
  dir = await mkdtemp(path.join(tmpdir(), "prompter-ctrl-c-"));
  // PostgreSQL runs as the postgres user when the tests run as root: it must reach its directory.
  await chmod(dir, 0o755);
});
afterAll(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

it("npm start on the embedded PostgreSQL: a start-up line, 'using' for other commands; SIGINT to the process group mid-export: it succeeds, then the database stops, no error logged", async () => {
  const pgDir = path.join(dir, "pg");
  server = await startServer({
    databaseUrl: "",
    args: ["start"],
    env: { DATABASE_URL: undefined, EMBEDDED_PG_DIR: pgDir, EMBEDDED_PG_PORT: String(port), EXPORT_DIR: path.join(dir, "exports") },
    detached: true,
    readyTimeoutMs: 180_000,
  });
  const password = (await readFile(path.join(pgDir, "superuser-password"), "utf8")).trim();
  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/prompter`;
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  pool.on("error", () => {}); // the database stops under the idle clients at the end
  const { rows: [{ id: userId }] } = await pool.query("insert into app_public.users (username) values ('ctrl_c') returning id");
  await pool.query("select app_private.generate_demo($1, 50)", [userId]);
  // Start-up ends with one line for the person at the terminal.
  const startup = server.logLines().map((line) => line.msg);
  const ready = startup.findIndex((msg) => msg.startsWith("prompter is ready"));
  expect(ready).toBeGreaterThan(startup.findIndex((msg) => msg.startsWith("prompter gateway listening")));
  expect(startup[ready]).toMatch(
    /^prompter is ready: open http:\/\/127\.0\.0\.1:\d+\/ for the web UI, GraphiQL at http:\/\/127\.0\.0\.1:\d+\/graphiql; make the first admin with: npx prompter user add <username> --admin$/);
  // A command run meanwhile uses the running cluster, and says so.
  const token = await promisify(execFile)(path.resolve("node_modules/.bin/node"), ["src/cli.ts", "token", "ctrl_c"], {
    // Its generated secret goes to the test's directory, not the project's .data.
    env: { ...process.env, DATABASE_URL: "", DATA_DIR: dir, EMBEDDED_PG_DIR: pgDir, EMBEDDED_PG_PORT: String(port) },
  });
  expect(token.stderr).toContain(`DATABASE_URL is not set: using the embedded PostgreSQL already running in ${pgDir} on port ${port}`);

  // The export waits for a lock on what it reads, so it is running when the signal comes.
  const blocker = await pool.connect();
  await blocker.query("begin");
  await blocker.query("lock table app_hidden.agent_stats in access exclusive mode");
  const exportId = await requestExport(pool, { role: "app_user", userId }, "agent_effectiveness");
  await waitUntil(async () => (await pool.query("select status from app_public.exports where id = $1", [exportId])).rows[0].status,
    (status) => status === "running", "the export is running");
  process.kill(-server.child.pid!, "SIGINT");
  await waitUntil(async () => server!.output().stdout, (stdout) => stdout.includes("SIGINT: shutting down"), "prompter is shutting down");
  // The database still answers while prompter waits for the export.
  expect((await blocker.query("select 1 as up")).rows).toEqual([{ up: 1 }]);
  await blocker.query("rollback");
  blocker.release();
  await pool.end();

  expect(await server.exited).toBe(0);
  const lines = server.logLines();
  expect(lines.filter((line) => line.level === "error" || line.level === "fatal")).toEqual([]);
  // Every connection closed before the database stopped (see ctrl-c-repeated.test.ts).
  expect(lines.filter((line) => /connection failed/.test(line.msg))).toEqual([]);
  expect(lines.some((line) => line.msg === "export succeeded" && String(line.exportId) === exportId)).toBe(true);
  expect(await readdir(path.join(dir, "exports"))).toEqual([expect.stringMatching(/^agent_effectiveness-/)]);

  // Started again: the export is recorded as succeeded and no worker was left presumed alive.
  const again = await startEmbeddedPostgres({ dir: pgDir, port });
  try {
    const client = new pg.Client({ connectionString: again.url("prompter") });
    await client.connect();
    const { rows: [row] } = await client.query("select status from app_public.exports where id = $1", [exportId]);
    expect(row.status).toBe("succeeded");
    const { rows: [{ live }] } = await client.query("select count(*)::int as live from app_private.worker_heartbeats");
    expect(live).toBe(0);
    await client.end();
  } finally {
    await again.stop();
  }
}, 300_000);
