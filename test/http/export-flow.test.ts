// The whole export path in one `prompter start` process: REST queues the export,
// the worker writes the file and notifies, the waiting request answers, and the
// download is the file the worker described; one /metrics covers both.
import { afterAll, beforeAll, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createUser, useTestDatabase } from "../support/db.ts";
import { signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
const tokens = { owner: "", other: "" };

beforeAll(async () => {
  const owner = await createUser(db.pool);
  tokens.owner = signTestToken(owner);
  tokens.other = signTestToken(await createUser(db.pool));
  await db.pool.query("select app_private.generate_demo($1, 3)", [owner]);
  server = await startServer({ databaseUrl: db.url, args: ["start"], env: { EXPORT_WAIT_SECONDS: "30" } });
});
afterAll(() => server?.stop());

it("?wait=true answers once the worker has written the file, which only its owner can download", async () => {
  const queued = await fetch(`${server.baseUrl}/api/storage/export-multi-agent?wait=true`, {
    method: "POST",
    headers: { authorization: `Bearer ${tokens.owner}` },
  });
  const body = await queued.json();
  expect(queued.status).toBe(200);
  expect(body).toMatchObject({ success: true, records: 3, status: "succeeded", export: { rows: 3, stale: false } });

  const download = await fetch(`${server.baseUrl}${body.export.download_url}`, { headers: { authorization: `Bearer ${tokens.owner}` } });
  const content = Buffer.from(await download.arrayBuffer());
  expect(download.status).toBe(200);
  expect(content.length).toBe(body.export.bytes);
  expect(createHash("sha256").update(content).digest("hex")).toBe(body.export.sha256);
  expect(download.headers.get("etag")).toBe(`"${body.export.sha256}"`);

  const stranger = await fetch(`${server.baseUrl}${body.export.download_url}`, { headers: { authorization: `Bearer ${tokens.other}` } });
  expect(stranger.status).toBe(404);
});

it("is ready with its own worker alive, and serves the gateway's and the worker's metrics together", async () => {
  const readyz = await (await fetch(`${server.baseUrl}/readyz`)).json();
  expect(readyz.checks).toEqual({ database: "ok", migrations: "ok", worker: "ok" });
  const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
  expect(metrics).toMatch(/^prompter_db_pool_connections\{pool="gateway"\} \d+$/m);
  expect(metrics).toMatch(/^prompter_db_pool_connections\{pool="worker"\} \d+$/m);
  expect(metrics).toMatch(/^prompter_exports_succeeded_total\{kind="multi_agent_log"\} 1$/m);
  expect(metrics).toMatch(/^prompter_http_request_duration_seconds_count\{method="POST",route="\/api\/storage\/export-multi-agent",status="200"\} 1$/m);
});

it("serves metrics that promtool check metrics accepts, the worker's and the gateway's", async () => {
  const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
  expect(metrics).toMatch(/^nodejs_active_handles\{type="\w+"\} \d+$/m);
  const checked = await promtool(["check", "metrics"], metrics);
  // promtool exits 3 and names the metric for each naming rule broken (say, a gauge ending in _total).
  expect(checked).toEqual({ code: 0, output: "" });
});

/** Runs Prometheus's own promtool (Debian's prometheus package; .ci/run installs it) with `input` on stdin. */
async function promtool(args: string[], input: string): Promise<{ code: number | null; output: string }> {
  const child = spawn("promtool", args, { stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const code = new Promise<number | null>((resolve, reject) => {
    child.once("error", (error: NodeJS.ErrnoException) =>
      reject(error.code === "ENOENT" ? new Error("promtool is not installed: apt-get install prometheus (as .ci/run does)") : error));
    child.once("close", resolve);
  });
  child.stdin.end(input);
  return { code: await code, output };
}
