// What every bench section shares: the bench's settings, its database, the
// gateway and worker processes it starts, tokens, and the small statistics helpers.
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile } from "node:fs/promises";
import { openSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { provisionDatabase, startEmbeddedPostgres, withCredentials, withDatabaseName } from "../src/db/embedded.ts";
import { signToken } from "../src/server/auth.ts";

export const root = fileURLToPath(new URL("..", import.meta.url));
export const node = path.join(root, "node_modules/.bin/node");
export const run = promisify(execFile);
export const SIZES = (process.env.BENCH_SIZES ?? "10000,100000,1000000").split(",").map(Number);
export const SECRET = "prompter-bench-secret-0123456789abcdef";
// Several benchmarks may share a machine and a server: each can pick its own.
export const PORT = Number(process.env.BENCH_PORT ?? 8901);
export const DATABASE = process.env.BENCH_DATABASE ?? "prompter_bench";
export const base = `http://127.0.0.1:${PORT}`;

export const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
export const median = (values: number[]) => quantile([...values].sort((a, b) => a - b), 0.5);
export const round = (n: number, digits = 2) => Number(n.toFixed(digits));
export const signed = (n: number) => (n < 0 ? `${n}` : `+${n}`);
export const log = (message: string) => process.stderr.write(`${message}\n`);

// Deployed as on managed PostgreSQL: the superuser only makes the owner and its
// database; the gateway logs in as the authenticator.
const BENCH_OWNER = "prompter_bench_owner";
const BENCH_PASSWORD = "prompter-bench-password-0123456789";

export async function database(): Promise<{ url: string; authUrl: string; superuserUrl: string; stop(): Promise<void> }> {
  let superuserUrl = process.env.DATABASE_URL;
  let stop = async () => {};
  if (!superuserUrl) {
    const embedded = await startEmbeddedPostgres({
      dir: await mkdtemp(path.join(os.tmpdir(), "prompter-bench-pg-")),
      port: Number(process.env.BENCH_PG_PORT ?? 54349),
      ephemeral: true,
    });
    superuserUrl = embedded.url("postgres");
    stop = () => embedded.stop();
  }
  const authenticator = `${DATABASE}_auth`;
  const admin = new pg.Client({ connectionString: superuserUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${admin.escapeIdentifier(DATABASE)} with (force)`);
  await admin.query(`drop role if exists ${admin.escapeIdentifier(authenticator)}`);
  await admin.end();
  await provisionDatabase(superuserUrl, { database: DATABASE, owner: BENCH_OWNER, ownerPassword: BENCH_PASSWORD });
  const url = withCredentials(withDatabaseName(superuserUrl, DATABASE), BENCH_OWNER, BENCH_PASSWORD);
  return { url, authUrl: withCredentials(url, authenticator, BENCH_PASSWORD), superuserUrl, stop };
}

export function startProcess(command: string, db: { url: string; authUrl: string }, exportDir: string, env: Record<string, string> = {}): ChildProcess {
  const child = spawn(node, ["src/cli.ts", command], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: db.url, AUTH_DATABASE_URL: db.authUrl, PORT: String(PORT), JWT_SECRET: SECRET, EXPORT_DIR: exportDir,
      LOG_LEVEL: "warn", NODE_ENV: "production", ...env },
    stdio: ["ignore", process.env.BENCH_SERVER_STDOUT ? openSync(process.env.BENCH_SERVER_STDOUT, "a") : "ignore", "inherit"],
  });
  return child;
}

export async function waitFor(check: () => Promise<boolean>, what: string, pollMs = 100) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024;
}

export function tokenFor(role: "app_user" | "app_admin", userId: string) {
  return signToken({ role, user_id: userId, exp: Math.floor(Date.now() / 1000) + 3600 * 6, token_generation: 0 }, SECRET);
}

export async function api(pathname: string, token: string, init: RequestInit = {}) {
  const response = await fetch(base + pathname, { ...init, headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers } });
  const body = await response.json();
  if (!response.ok) throw new Error(`${pathname}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

/** Starts a worker and resolves once it has recorded its first heartbeat, so it takes jobs. */
export async function startWorkerProcess(pool: pg.Pool, db: { url: string; authUrl: string }, exportDir: string, env: Record<string, string> = {}) {
  const worker = startProcess("worker", db, exportDir, env);
  await waitFor(async () => (await pool.query("select 1 from app_private.worker_heartbeats where pid = $1", [worker.pid])).rowCount === 1, "the worker to start");
  return worker;
}

export const stopProcess = (child: ChildProcess) =>
  new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(null);
    child.once("exit", resolve);
    child.kill("SIGTERM");
  });
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}
