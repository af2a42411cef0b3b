// `npm run bench`: builds its own data with the demo generator at several sizes
// and measures, against baselines taken in the same run on the same database:
//   1. export of multi_agent_log through the API vs psql \copy of the same SELECT,
//      and the worker's peak RSS; then the same export with EXPORT_STORAGE=s3 (to
//      s3rver on loopback) vs the local one, and that worker's peak RSS;
//   2. agent_effectiveness latency (REST and SQL, user and admin) under concurrent
//      load, vs the GROUP BY over all versions it replaces;
//   3. job pickup: request_export commit -> task start;
//   4. the write path through GraphQL with 20 clients: eight single mutations
//      per prompt vs one recordRun;
//   5. 10 writers of ONE user in SQL: with the bookkeeping triggers, with them
//      disabled, and on plain copies of the tables (no RLS, no triggers).
//   6. noisy neighbours: user B's agent_effectiveness latency, export and /readyz
//      while user A attacks, vs the same without the attack.
// Writes bench/results.json and bench/RESULTS.md. Not part of `npm test`.
// BENCH_ONLY=effectiveness,runs (any of export, effectiveness, pickup, writes,
// runs, contention, noisy, feeds) runs only those sections and prints their figures
// instead of writing the results files, for profiling one path.
import autocannon from "autocannon";
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { openSync } from "node:fs";
import http from "node:http";
import S3rver from "s3rver";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { provisionDatabase, startEmbeddedPostgres, withCredentials, withDatabaseName } from "../src/db/embedded.ts";
import { migrateDatabase } from "../src/db/migrate.ts";
import { signToken } from "../src/server/auth.ts";
import { PREVIOUS_RELEASE } from "../test/support/previous-release.ts";
import { benchFeeds } from "./feeds.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const node = path.join(root, "node_modules/.bin/node");
const run = promisify(execFile);
const SIZES = (process.env.BENCH_SIZES ?? "10000,100000,1000000").split(",").map(Number);
const SECRET = "prompter-bench-secret-0123456789abcdef";
// Several benchmarks may share a machine and a server: each can pick its own.
const PORT = Number(process.env.BENCH_PORT ?? 8901);
const DATABASE = process.env.BENCH_DATABASE ?? "prompter_bench";
const base = `http://127.0.0.1:${PORT}`;
const SECTIONS = ["export", "effectiveness", "session", "pickup", "writes", "runs", "contention", "noisy", "feeds"];
const ONLY = process.env.BENCH_ONLY?.split(",");
const unknownSection = ONLY?.find((section) => !SECTIONS.includes(section));
if (unknownSection) throw new Error(`BENCH_ONLY: no section ${unknownSection}; the sections are ${SECTIONS.join(", ")}`);
const selected = (section: string) => !ONLY || ONLY.includes(section);

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const median = (values: number[]) => quantile([...values].sort((a, b) => a - b), 0.5);
const round = (n: number, digits = 2) => Number(n.toFixed(digits));
const signed = (n: number) => (n < 0 ? `${n}` : `+${n}`);
const log = (message: string) => process.stderr.write(`${message}\n`);

// Deployed as on managed PostgreSQL: the superuser only makes the owner and its
// database; the gateway logs in as the authenticator.
const BENCH_OWNER = "prompter_bench_owner";
const BENCH_PASSWORD = "prompter-bench-password-0123456789";

async function database(): Promise<{ url: string; authUrl: string; superuserUrl: string; stop(): Promise<void> }> {
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

function startProcess(command: string, db: { url: string; authUrl: string }, exportDir: string, env: Record<string, string> = {}): ChildProcess {
  const child = spawn(node, ["src/cli.ts", command], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: db.url, AUTH_DATABASE_URL: db.authUrl, PORT: String(PORT), JWT_SECRET: SECRET, EXPORT_DIR: exportDir,
      LOG_LEVEL: "warn", NODE_ENV: "production", ...env },
    stdio: ["ignore", process.env.BENCH_SERVER_STDOUT ? openSync(process.env.BENCH_SERVER_STDOUT, "a") : "ignore", "inherit"],
  });
  return child;
}

async function waitFor(check: () => Promise<boolean>, what: string, pollMs = 100) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024;
}

function tokenFor(role: "app_user" | "app_admin", userId: string) {
  return signToken({ role, user_id: userId, exp: Math.floor(Date.now() / 1000) + 3600 * 6, token_generation: 0 }, SECRET);
}

async function api(pathname: string, token: string, init: RequestInit = {}) {
  const response = await fetch(base + pathname, { ...init, headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers } });
  const body = await response.json();
  if (!response.ok) throw new Error(`${pathname}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

/** The SELECT the multi_agent_log export copies from, as the task gets it. */
async function multiAgentLogQuery(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query("select app_hidden.multi_agent_log_query(false) as sql");
  return rows[0].sql;
}

/** Median seconds of three multi_agent_log exports through the API, waited for. */
async function apiExportSeconds(userId: string, size: number): Promise<number> {
  const token = tokenFor("app_user", userId);
  const apiSeconds: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    const body = await api("/api/storage/export-multi-agent?wait=true", token, { method: "POST" });
    apiSeconds.push((performance.now() - started) / 1000);
    if (body.records !== size) throw new Error(`export had ${body.records} records, expected ${size}`);
  }
  return median(apiSeconds);
}

/** Starts a worker and resolves once it has recorded its first heartbeat, so it takes jobs. */
async function startWorkerProcess(pool: pg.Pool, db: { url: string; authUrl: string }, exportDir: string, env: Record<string, string> = {}) {
  const worker = startProcess("worker", db, exportDir, env);
  await waitFor(async () => (await pool.query("select 1 from app_private.worker_heartbeats where pid = $1", [worker.pid])).rowCount === 1, "the worker to start");
  return worker;
}

const stopProcess = (child: ChildProcess) =>
  new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(null);
    child.once("exit", resolve);
    child.kill("SIGTERM");
  });

async function benchExport(pool: pg.Pool, url: string, userId: string, size: number, worker: ChildProcess) {
  const api_s = await apiExportSeconds(userId, size);
  const sql = await multiAgentLogQuery(pool);
  const psqlSeconds: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    await run("psql", [url, "-v", "ON_ERROR_STOP=1", "-qc", `\\copy (${sql.replace(/\s+/g, " ")}) to '/dev/null' with (format csv, header)`], {
      env: { ...process.env, PGOPTIONS: `-c role=app_user -c jwt.claims.user_id=${userId}` },
    });
    psqlSeconds.push((performance.now() - started) / 1000);
  }
  const psql_s = median(psqlSeconds);
  return { api_s: round(api_s, 3), psql_copy_s: round(psql_s, 3), ratio: round(api_s / psql_s, 3), worker_peak_rss_mb: round(await peakRssMb(worker.pid!), 1) };
}

/**
 * The same export with a worker on EXPORT_STORAGE=s3 (s3rver on loopback: it
 * writes to local disk, so the ratio shows the upload path's cost, not a
 * network's). The local worker steps aside meanwhile: both would take the jobs.
 */
async function benchS3Export(pool: pg.Pool, db: { url: string; authUrl: string }, userId: string, size: number, localSeconds: number, s3Env: Record<string, string>) {
  const worker = await startWorkerProcess(pool, db, "/nonexistent/prompter-bench-exports", s3Env);
  try {
    const s3_s = await apiExportSeconds(userId, size);
    return { s3_s: round(s3_s, 3), ratio_to_local: round(s3_s / localSeconds, 3), worker_peak_rss_mb: round(await peakRssMb(worker.pid!), 1) };
  } finally {
    await stopProcess(worker);
  }
}

async function startS3(): Promise<{ env: Record<string, string>; stop(): Promise<void> }> {
  const directory = await mkdtemp(path.join(os.tmpdir(), "prompter-bench-s3-"));
  const s3rver = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory, configureBuckets: [{ name: "prompter-bench" }] });
  const { port } = await s3rver.run();
  return {
    env: {
      EXPORT_STORAGE: "s3", S3_BUCKET: "prompter-bench", S3_PREFIX: "exports/", S3_ENDPOINT: `http://127.0.0.1:${port}`,
      S3_FORCE_PATH_STYLE: "true", AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER",
    },
    async stop() {
      await s3rver.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

async function cannon(pathname: string, token: string) {
  const result = await autocannon({ url: base + pathname, connections: 10, duration: 5, headers: { authorization: `Bearer ${token}` } });
  if (result.non2xx) throw new Error(`${pathname}: ${result.non2xx} non-2xx responses`);
  return { p50_ms: result.latency.p50, p99_ms: result.latency.p99, requests_per_s: round(result.requests.average, 0) };
}

/** Latency of one SQL statement run as `role` by 10 concurrent clients for 5 s. */
async function sqlLoad(url: string, role: string, userId: string, sql: string, seconds = 5) {
  const latencies: number[] = [];
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(Array.from({ length: 10 }, async () => {
    const client = new pg.Client({ connectionString: url, options: `-c role=${role} -c jwt.claims.user_id=${userId}` });
    await client.connect();
    while (Date.now() < deadline) {
      const started = performance.now();
      await client.query(sql);
      latencies.push(performance.now() - started);
    }
    await client.end();
  }));
  latencies.sort((a, b) => a - b);
  return { p50_ms: round(quantile(latencies, 0.5), 3), p99_ms: round(quantile(latencies, 0.99), 3), queries_per_s: round(latencies.length / seconds, 0) };
}

const GROUP_BY_BASELINE = `select v.source as agent, count(*) as total, count(b.prompt_id) as wins,
  avg(s.total) as avg_score from app_public.prompt_versions v
  left join app_public.best_heads b on b.prompt_version_id = v.id
  left join app_public.judge_scores s on s.prompt_version_id = v.id group by v.source`;

async function benchEffectiveness(url: string, userId: string, adminId: string) {
  const view = "select * from app_public.agent_effectiveness";
  return {
    rest_user: await cannon("/api/agents/effectiveness", tokenFor("app_user", userId)),
    rest_admin: await cannon("/api/agents/effectiveness", tokenFor("app_admin", adminId)),
    sql_user: await sqlLoad(url, "app_user", userId, view),
    sql_admin: await sqlLoad(url, "app_admin", adminId, view),
    group_by_baseline_admin: await sqlLoad(url, "app_admin", adminId, GROUP_BY_BASELINE, 3),
  };
}

/**
 * The previous release (git PREVIOUS_RELEASE, before sessions were checked in
 * SQL), deployed as it was then: its own checkout (sharing our node_modules: its
 * dependencies are a subset), its own migrate command and a database of its own
 * with the same demo data, and its gateway on the next port. The baseline for
 * the session check's cost on agent_effectiveness.
 */
async function startPreviousRelease(superuserUrl: string, exportDir: string) {
  const checkout = await mkdtemp(path.join(os.tmpdir(), "prompter-bench-previous-"));
  await run("git", ["archive", "--format=tar", "-o", path.join(checkout, "release.tar"), PREVIOUS_RELEASE], { cwd: root });
  await run("tar", ["-xf", "release.tar"], { cwd: checkout });
  await symlink(path.join(root, "node_modules"), path.join(checkout, "node_modules"));
  const database = `${DATABASE}_previous`;
  const admin = new pg.Client({ connectionString: superuserUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${admin.escapeIdentifier(database)} with (force)`);
  await admin.query(`create database ${admin.escapeIdentifier(database)}`);
  await admin.end();
  const url = withDatabaseName(superuserUrl, database);
  const env = { ...process.env, DATABASE_URL: url, PORT: String(PORT + 1), JWT_SECRET: SECRET, EXPORT_DIR: exportDir, LOG_LEVEL: "warn", NODE_ENV: "production" };
  await run(node, ["src/cli.ts", "migrate"], { cwd: checkout, env });
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const [adminId, dataUser] = (await pool.query<{ id: string }>(
    "insert into app_public.users (username, is_admin) select 'bench_' || i, i = 0 from generate_series(0, 1) i returning id")).rows.map((r) => r.id);
  const server = spawn(node, ["src/cli.ts", "server"], { cwd: checkout, env, stdio: ["ignore", "ignore", "inherit"] });
  const previousBase = `http://127.0.0.1:${PORT + 1}`;
  await waitFor(async () => (await fetch(`${previousBase}/healthz`)).ok, "the previous release's gateway");
  let generated = 0;
  return {
    base: previousBase, adminId, dataUser, pid: server.pid!,
    /** `count` users of its own for the write paths. */
    async writers(count: number): Promise<string[]> {
      return (await pool.query<{ id: string }>(
        "insert into app_public.users (username) select 'bench_writer_' || i from generate_series(1, $1) i returning id", [count])).rows.map((r) => r.id);
    },
    async generate(size: number) {
      await pool.query("select app_private.generate_demo($1, $2)", [dataUser, size - generated]);
      await pool.query("vacuum analyze");
      generated = size;
    },
    async stop() {
      await stopProcess(server);
      await pool.end();
      await rm(checkout, { recursive: true, force: true });
    },
  };
}

/**
 * p50 of GET pathname with 10 keep-alive clients for `seconds`, to the
 * microsecond (autocannon rounds to whole milliseconds, too coarse for a 1 ms budget).
 */
async function p50Ms(origin: string, pathname: string, token: string, seconds: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
  const latencies: number[] = [];
  const deadline = Date.now() + seconds * 1000;
  const get = () => new Promise<void>((resolve, reject) => {
    http.get(origin + pathname, { agent, headers: { authorization: `Bearer ${token}` } }, (response) => {
      response.resume();
      response.on("end", () => (response.statusCode === 200 ? resolve() : reject(new Error(`${pathname}: ${response.statusCode}`))));
    }).on("error", reject);
  });
  await Promise.all(Array.from({ length: 10 }, async () => {
    while (Date.now() < deadline) {
      const started = performance.now();
      await get();
      latencies.push(performance.now() - started);
    }
  }));
  agent.destroy();
  return round(median(latencies), 3);
}

/**
 * agent_effectiveness through REST here and on the previous release, same data,
 * the two gateways taking turns (3 rounds of 4 s each), for a user and an admin.
 */
async function benchSessionCost(previous: Awaited<ReturnType<typeof startPreviousRelease>>, userId: string, adminId: string) {
  const pathname = "/api/agents/effectiveness";
  const p50s = { user: [] as number[], previous_user: [] as number[], admin: [] as number[], previous_admin: [] as number[] };
  for (let i = 0; i < 3; i++) {
    p50s.user.push(await p50Ms(base, pathname, tokenFor("app_user", userId), 4));
    p50s.previous_user.push(await p50Ms(previous.base, pathname, tokenFor("app_user", previous.dataUser), 4));
    p50s.admin.push(await p50Ms(base, pathname, tokenFor("app_admin", adminId), 4));
    p50s.previous_admin.push(await p50Ms(previous.base, pathname, tokenFor("app_admin", previous.adminId), 4));
  }
  const [user, previousUser, admin, previousAdmin] = [p50s.user, p50s.previous_user, p50s.admin, p50s.previous_admin].map(median);
  return {
    user_p50_ms: user, previous_user_p50_ms: previousUser, user_extra_ms: round(user - previousUser, 3),
    admin_p50_ms: admin, previous_admin_p50_ms: previousAdmin, admin_extra_ms: round(admin - previousAdmin, 3),
  };
}

/** request_export commit -> the task marks the export running, one job at a time (20 users x 10: the rate limit). */
async function benchPickup(pool: pg.Pool, userIds: string[]) {
  const pickups: number[] = [];
  for (let i = 0; i < 200; i++) {
    const userId = userIds[i % userIds.length];
    const client = await pool.connect();
    let id: string;
    try {
      await client.query("begin");
      await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [userId]);
      id = (await client.query("select id from app_public.request_export('agent_effectiveness')")).rows[0].id;
      await client.query("commit");
    } finally {
      client.release();
    }
    const committed = Date.now();
    let startedAt: Date | null = null;
    await waitFor(async () => {
      startedAt = (await pool.query("select started_at from app_public.exports where id = $1", [id])).rows[0].started_at;
      return startedAt !== null;
    }, `export ${id} to start`, 2);
    pickups.push(startedAt!.getTime() - committed);
  }
  pickups.sort((a, b) => a - b);
  return { jobs: pickups.length, p50_ms: quantile(pickups, 0.5), p99_ms: quantile(pickups, 0.99) };
}

// The write paths' clients share the machine's two cores with the gateway and
// PostgreSQL: node:http with kept-alive connections costs them about a third of
// what fetch does (0.87 ms of CPU per request), which the service would lose.
const writeAgent = new http.Agent({ keepAlive: true, maxSockets: 20 });

async function graphql(token: string, query: string, variables: Record<string, unknown>, origin = base) {
  const payload = JSON.stringify({ query, variables });
  const text = await new Promise<string>((resolve, reject) => {
    const request = http.request(`${origin}/graphql`, {
      method: "POST", agent: writeAgent,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve(Buffer.concat(chunks).toString()));
    });
    request.on("error", reject);
    request.end(payload);
  });
  const body = JSON.parse(text);
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

// /proc counts CPU time in USER_HZ ticks, 100 a second on Linux.
const CLOCK_TICKS = 100;

/** CPU seconds a process has used (user + system), from /proc. */
async function processCpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Busy and total CPU seconds of the whole machine, from /proc/stat. */
async function machineCpuSeconds(): Promise<{ busy: number; all: number }> {
  const ticks = (await readFile("/proc/stat", "utf8")).split("\n")[0].split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = ticks;
  return { busy: (user + nice + system + irq + softirq + steal) / CLOCK_TICKS, all: (user + nice + system + idle + iowait + irq + softirq + steal) / CLOCK_TICKS };
}

/** What a write path used while `measure` ran: prompts written, seconds, and CPU seconds of the gateway, this client and the machine. */
interface CpuUse { prompts: number; seconds: number; gateway: number; client: number; busy: number; all: number }

async function cpuUse(gatewayPid: number, measure: () => Promise<number>): Promise<CpuUse> {
  const [gateway0, machine0, client0, started] = [await processCpuSeconds(gatewayPid), await machineCpuSeconds(), process.cpuUsage(), Date.now()];
  const prompts = await measure();
  const [gateway1, machine1, client1] = [await processCpuSeconds(gatewayPid), await machineCpuSeconds(), process.cpuUsage(client0)];
  return { prompts, seconds: (Date.now() - started) / 1000, gateway: gateway1 - gateway0, client: (client1.user + client1.system) / 1e6, busy: machine1.busy - machine0.busy, all: machine1.all - machine0.all };
}

const addCpuUse = (a: CpuUse, b: CpuUse): CpuUse => ({ prompts: a.prompts + b.prompts, seconds: a.seconds + b.seconds, gateway: a.gateway + b.gateway, client: a.client + b.client, busy: a.busy + b.busy, all: a.all + b.all });

/**
 * Prompts/s, and where a write path's CPU goes per prompt: the gateway, this
 * client, and the rest of the machine (PostgreSQL, on an otherwise idle machine).
 */
function cpuReport(use: CpuUse) {
  const perPrompt = (seconds: number) => round((seconds * 1000) / use.prompts, 3);
  return {
    prompts_per_s: round(use.prompts / use.seconds, 1),
    cpu_ms_per_prompt: { gateway: perPrompt(use.gateway), client: perPrompt(use.client), rest_of_machine: perPrompt(use.busy - use.gateway - use.client) },
    machine_busy: round(use.busy / use.all, 2),
  };
}

// Each write path runs unmeasured for a while first: the gateway's JIT compiles
// the path's code, and the figures are those of the service in its steady state.
const WARM_UP_MS = 3000;
const MEASURED_MS = 10_000;

type Write = (client: number) => Promise<void>;

/** `clients` loops of `write` (one prompt each) for `ms`: the prompts written. */
async function writeFor(clients: number, ms: number, write: Write): Promise<number> {
  const until = Date.now() + ms;
  let prompts = 0;
  await Promise.all(Array.from({ length: clients }, async (_, i) => {
    while (Date.now() < until) {
      await write(i);
      prompts += 1;
    }
  }));
  return prompts;
}

/** 20 clients writing for WARM_UP_MS, then counted for MEASURED_MS. */
async function writeLoop(gatewayPid: number, write: Write) {
  await writeFor(20, WARM_UP_MS, write);
  return cpuReport(await cpuUse(gatewayPid, () => writeFor(20, MEASURED_MS, write)));
}

/** Each prompt as eight mutations to `origin`'s gateway, by 20 clients: prompt -> 3 versions -> 3 scores -> best head. */
function eightMutations(userIds: string[], origin = base): Write {
  const tokens = Array.from({ length: 20 }, (_, i) => tokenFor("app_user", userIds[i % userIds.length]));
  return async (i) => {
    const token = tokens[i];
    const prompt = await graphql(token, "mutation($t: String!) { createPrompt(input: { prompt: { text: $t } }) { prompt { rowId } } }", { t: `bench prompt ${i}` }, origin);
    const promptId = prompt.createPrompt.prompt.rowId;
    let best: { id: string; total: number } | undefined;
    for (const source of ["syntax", "structure", "domain"]) {
      const version = await graphql(token, "mutation($p: BigInt!, $s: String!) { createPromptVersion(input: { promptVersion: { promptId: $p, text: \"improved\", source: $s } }) { promptVersion { rowId } } }", { p: promptId, s: source }, origin);
      const versionId = version.createPromptVersion.promptVersion.rowId;
      const value = Math.round(Math.random() * 100) / 10;
      await graphql(token, "mutation($v: BigInt!, $x: BigFloat!) { createJudgeScore(input: { judgeScore: { promptVersionId: $v, clarity: $x, specificity: $x, actionability: $x, structure: $x, contextUse: $x } }) { clientMutationId } }", { v: versionId, x: String(value) }, origin);
      if (!best || value > best.total) best = { id: versionId, total: value };
    }
    await graphql(token, "mutation($v: BigInt!) { setBestHead(input: { promptVersionId: $v }) { clientMutationId } }", { v: best!.id }, origin);
  };
}

const RUN_MUTATION = "mutation($run: JSON!) { recordRun(input: { run: $run }) { result } }";

/** The same prompt as eightMutations (3 versions, 3 scores, best head) as one recordRun per prompt. */
function oneRecordRun(userIds: string[]): Write {
  const tokens = Array.from({ length: 20 }, (_, i) => tokenFor("app_user", userIds[i % userIds.length]));
  return async (i) => {
    const values = [0, 1, 2].map(() => Math.round(Math.random() * 100) / 10);
    const versions = ["syntax", "structure", "domain"].map((agent, v) => {
      const x = values[v];
      return { agent, text: "improved", scores: { clarity: x, specificity: x, actionability: x, structure: x, context_use: x } };
    });
    await graphql(tokens[i], RUN_MUTATION, { run: { prompt: `bench prompt ${i}`, versions, best_version: values.indexOf(Math.max(...values)) } });
  };
}

/** This release's eight mutations per prompt through GraphQL, 20 clients. */
async function benchWrites(userIds: string[], gatewayPid: number) {
  const measured = await writeLoop(gatewayPid, eightMutations(userIds));
  return { clients: 20, seconds: MEASURED_MS / 1000, ...measured, mutations_per_s: round(measured.prompts_per_s * 8, 1) };
}

// The runs section's turns: the same 30 s per path as 3 rounds of 10 s, in
// slices short enough that both paths see the machine at the same speed.
const TURN_MS = 3000;
const TURNS = 10;

/**
 * recordRun (20 users) against the previous release's eight mutations (issue
 * 14's "today"), each on its own gateway and database, after WARM_UP_MS each,
 * taking TURNS turns of TURN_MS (the order alternating): how fast these
 * machines run drifts over minutes of load, and the ratio of the two paths
 * measured side by side holds where the prompts/s do not. Then recordRun by
 * 20 clients of one user, on its own.
 */
async function benchRunsAgainstPreviousRelease(previous: Awaited<ReturnType<typeof startPreviousRelease>>, userIds: string[], gatewayPid: number) {
  const paths = [
    { pid: previous.pid, write: eightMutations(await previous.writers(20), previous.base) },
    { pid: gatewayPid, write: oneRecordRun(userIds) },
  ];
  for (const path of paths) await writeFor(20, WARM_UP_MS, path.write);
  const used: (CpuUse | undefined)[] = [undefined, undefined];
  const turns: number[][] = [[], []];
  for (let turn = 0; turn < TURNS; turn++) {
    for (const index of turn % 2 === 0 ? [0, 1] : [1, 0]) {
      const slice = await cpuUse(paths[index].pid, () => writeFor(20, TURN_MS, paths[index].write));
      used[index] = used[index] ? addCpuUse(used[index]!, slice) : slice;
      turns[index].push(round(slice.prompts / slice.seconds, 0));
    }
  }
  const [previousRelease, users20] = used.map((use) => cpuReport(use!));
  return {
    users_20: { clients: 20, users: 20, seconds: round(used[1]!.seconds, 0), ...users20, turns_prompts_per_s: turns[1] },
    user_1: { clients: 20, users: 1, seconds: MEASURED_MS / 1000, ...(await writeLoop(gatewayPid, oneRecordRun(userIds.slice(0, 1)))) },
    previous_release_8_mutations: { clients: 20, seconds: round(used[0]!.seconds, 0), ...previousRelease, mutations_per_s: round(previousRelease.prompts_per_s * 8, 1), turns_prompts_per_s: turns[0] },
    vs_previous_release: round(users20.prompts_per_s / previousRelease.prompts_per_s, 1),
  };
}

// Plain copies of the tables one write transaction touches: same columns, keys,
// indexes, checks and foreign keys, no RLS and no triggers.
const PLAIN_COPIES = `
  drop schema if exists bench_plain cascade;
  create schema bench_plain;
  create table bench_plain.prompts (like app_public.prompts including all);
  alter table bench_plain.prompts add foreign key (user_id) references app_public.users on delete cascade;
  create table bench_plain.prompt_versions (like app_public.prompt_versions including all);
  alter table bench_plain.prompt_versions add foreign key (user_id, prompt_id) references bench_plain.prompts (user_id, id) on delete cascade,
    add foreign key (source) references app_public.agents (name);
  create table bench_plain.judge_scores (like app_public.judge_scores including all);
  alter table bench_plain.judge_scores add foreign key (user_id, prompt_version_id, source)
    references bench_plain.prompt_versions (user_id, id, source) on delete cascade on update cascade;`;

type WriteMode = "bookkeeping" | "no_bookkeeping" | "plain_tables";
const TRACKING_TRIGGERS = ["prompts", "prompt_versions", "judge_scores"]
  .map((table) => `app_public.${table} disable trigger _500_track_insert`);

/** 10 connections writing as one user for `seconds`: one prompt + one version + one score per transaction. */
async function writeTransactions(url: string, userId: string, mode: WriteMode, seconds: number): Promise<number> {
  const schema = mode === "plain_tables" ? "bench_plain" : "app_public";
  // The plain copies have no defaults from the session and no trigger to copy the source.
  const owner = mode === "plain_tables" ? ", user_id" : "";
  const ownerValue = mode === "plain_tables" ? `, ${Number(userId)}` : "";
  const role = mode === "plain_tables" ? "" : "app_user";
  let transactions = 0;
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(Array.from({ length: 10 }, async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    while (Date.now() < deadline) {
      await client.query("begin");
      await client.query("select set_config('role', coalesce(nullif($1, ''), current_user), true), set_config('jwt.claims.user_id', $2, true)", [role, userId]);
      const prompt = (await client.query(`insert into ${schema}.prompts (text${owner}) values ('bench'${ownerValue}) returning id`)).rows[0].id;
      const version = (await client.query(
        `insert into ${schema}.prompt_versions (prompt_id, text, source${owner}) values ($1, 'better', 'syntax'${ownerValue}) returning id`, [prompt])).rows[0].id;
      await client.query(
        `insert into ${schema}.judge_scores (prompt_version_id, clarity, specificity, actionability, structure, context_use${owner}${owner ? ", source" : ""})
         values ($1, 5, 6, 7, 8, 9${ownerValue}${owner ? ", 'syntax'" : ""})`, [version]);
      await client.query("commit");
      transactions += 1;
    }
    await client.end();
  }));
  return transactions / seconds;
}

/** The three modes in turn, `rounds` times (so drift on a shared machine hits each alike); median tps of each. */
async function benchContention(pool: pg.Pool, url: string, userId: string, rounds = 9, seconds = 3) {
  await pool.query(PLAIN_COPIES);
  const tps: Record<WriteMode, number[]> = { bookkeeping: [], no_bookkeeping: [], plain_tables: [] };
  const modes = Object.keys(tps) as WriteMode[];
  for (let round = 0; round < rounds; round++) {
    for (const mode of round % 2 === 0 ? modes : [...modes].reverse()) {
      if (mode === "no_bookkeeping") for (const statement of TRACKING_TRIGGERS) await pool.query(`alter table ${statement}`);
      try {
        tps[mode].push(await writeTransactions(url, userId, mode, seconds));
      } finally {
        if (mode === "no_bookkeeping") for (const statement of TRACKING_TRIGGERS) await pool.query(`alter table ${statement.replace("disable", "enable")}`);
      }
    }
  }
  await pool.query("drop schema bench_plain cascade");
  // Each round's modes ran back to back, at the speed the machine had then:
  // the ratios are taken per round, and their median reported.
  const ratioTo = (other: WriteMode) => median(tps.bookkeeping.map((bookkeeping, i) => bookkeeping / tps[other][i]));
  return {
    writers: 10, users: 1, seconds, rounds,
    bookkeeping_tps: round(median(tps.bookkeeping), 0),
    no_bookkeeping_tps: round(median(tps.no_bookkeeping), 0),
    plain_tables_tps: round(median(tps.plain_tables), 0),
    vs_no_bookkeeping: round(ratioTo("no_bookkeeping")),
    vs_plain_tables: round(ratioTo("plain_tables")),
  };
}

/** The heaviest read the GraphQL limits let through: as many full pages as the cost limit allows. */
const HEAVY_QUERY = `{ ${Array.from({ length: 5 }, (_, i) => `a${i}: allPromptVersions(first: 1000, offset: ${i * 1000}) { nodes { text explanation } }`).join(" ")} }`;

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

/**
 * User B's experience with and without user A's attack: A's heaviest allowed
 * GraphQL reads in parallel, 50 clients signing in with a wrong password without
 * pause, and a SQL login of A
 * holding B's and the service's advisory keys while running a query that
 * would last 10 minutes (its statement timeout is 5 s; the worker enforces it).
 */
async function benchNoisyNeighbours(pool: pg.Pool, url: string, server: ChildProcess, attackerId: string) {
  // A user of its own: the others have used up their export rate limit in the pickup benchmark.
  const { rows: [{ id: victimId }] } = await pool.query<{ id: string }>("insert into app_public.users (username) values ('bench_victim') returning id");
  await pool.query("select app_private.generate_demo($1, 100)", [victimId]);
  const victim = tokenFor("app_user", victimId);
  const attacker = tokenFor("app_user", attackerId);
  const measureVictim = async () => {
    // 3 clients, plus B's export request: within B's CALLER_MAX_CONCURRENT (4).
    const result = await autocannon({ url: `${base}/api/agents/effectiveness`, connections: 3, duration: 8, headers: { authorization: `Bearer ${victim}` } });
    const statuses = Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([status, stats]) => [status, (stats as { count: number }).count]));
    return { p50_ms: result.latency.p50, p99_ms: result.latency.p99, requests_per_s: round(result.requests.average, 0), non_2xx: result.non2xx, statuses };
  };
  log("noisy neighbours: baseline");
  const baseline = await measureVictim();

  log("noisy neighbours: under attack");
  const login = `bench_noisy_${process.pid}`;
  const { rows: [added] } = await pool.query(
    "select generated_password from app_private.add_sql_login($1, (select username from app_public.users where id = $2), statement_timeout => '5s')",
    [login, attackerId]);
  const readerUrl = new URL(url);
  readerUrl.username = login;
  readerUrl.password = added.generated_password;
  const reader = new pg.Client({ connectionString: readerUrl.toString() });
  reader.on("error", () => {});
  let stop = false;
  let peakRss = 0;
  const readyz = { probes: 0, failed: 0 };
  try {
    await reader.connect();
    await reader.query(
      `select pg_advisory_lock(hashtextextended('prompter.exports.rate', $1::bigint)), pg_advisory_lock(hashtextextended('prompter.migrate', 0)),
              pg_advisory_lock(4727445306447283)`, [victimId]);
    await reader.query("set statement_timeout = 0");
    const longQuery = reader.query("select pg_sleep(600)").then(() => "finished", (error) => error.code === "57014" ? "cancelled" : error.message);
    const refusals: Record<string, number> = {};
    const heavy = Array.from({ length: 8 }, async () => {
      let refused = 0;
      let answered = 0;
      let failed = 0; // connection errors, such as a kept-alive socket the server closed meanwhile
      while (!stop) {
        // Refused: a GraphQL error, or the gateway's 429 (too many of A's requests in flight).
        const body = await fetch(`${base}/graphql`, { method: "POST", headers: { authorization: `Bearer ${attacker}`, "content-type": "application/json" }, body: JSON.stringify({ query: HEAVY_QUERY }) })
          .then((response) => response.json(), () => undefined);
        if (!body) failed++;
        else if (body.errors || body.error) {
          refused++;
          const code = body.errors?.[0]?.extensions?.code ?? body.error?.code;
          refusals[code] = (refusals[code] ?? 0) + 1;
        }
        else answered++;
      }
      return { refused, answered, failed };
    });
    // 50 clients guessing passwords without pause, each trying again as soon as it is answered.
    const signIns = Promise.all(Array.from({ length: 50 }, async () => {
      const answers: Record<string, number> = {};
      while (!stop) {
        const body = await fetch(`${base}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ query: `mutation { authenticate(input: { username: "bench_1", password: "not-the-password" }) { result } }` }),
        }).then((r) => r.json(), () => undefined);
        const code = body ? body.errors?.[0]?.extensions?.code ?? "signed in" : "connection error";
        answers[code] = (answers[code] ?? 0) + 1;
      }
      return answers;
    })).then((all) => {
      const answers: Record<string, number> = {};
      for (const one of all) for (const [code, count] of Object.entries(one)) answers[code] = (answers[code] ?? 0) + count;
      return answers;
    });
    const sampling = (async () => {
      while (!stop) {
        peakRss = Math.max(peakRss, await rssMb(server.pid!));
        readyz.probes++;
        if (!(await fetch(`${base}/readyz`).then((r) => r.ok, () => false))) readyz.failed++;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    const [attack, victimExport] = await Promise.all([
      measureVictim(),
      api("/api/storage/export-multi-agent?wait=true", victim, { method: "POST" }).then((body) => ({ status: body.export.status, records: body.records })),
    ]);
    stop = true;
    const attackerQueries = { ...(await Promise.all(heavy)).reduce((sum, q) => ({ refused: sum.refused + q.refused, answered: sum.answered + q.answered, failed: sum.failed + q.failed })), refusals };
    const wrongSignIns = await signIns;
    await sampling;
    return {
      scale_prompts_of_attacker: Number((await pool.query("select count(*) from app_public.prompts where user_id = $1", [attackerId])).rows[0].count),
      baseline, attack, victim_export: victimExport, readyz, gateway_peak_rss_mb: round(peakRss, 1),
      attacker_heavy_queries: attackerQueries, wrong_sign_ins: wrongSignIns, reader_long_query: await longQuery,
    };
  } finally {
    stop = true;
    await reader.end().catch(() => {});
    await pool.query("call app_private.remove_sql_login($1, null)", [login]);
  }
}

async function versions(pool: pg.Pool) {
  const pkg = (name: string) => readFile(path.join(root, "node_modules", name, "package.json"), "utf8").then((t) => JSON.parse(t).version);
  return {
    node: process.version,
    postgres: (await pool.query("show server_version")).rows[0].server_version,
    postgraphile: await pkg("postgraphile"),
    "graphile-worker": await pkg("graphile-worker"),
    "pg-copy-streams": await pkg("pg-copy-streams"),
  };
}

function markdown(results: Record<string, any>): string {
  const lines = [
    "# Benchmark results", "",
    `Run on ${results.date} (${results.machine.cpus} x ${results.machine.cpu}, ${results.machine.memory_gb} GiB, ${results.machine.os}).`,
    `Versions: ${Object.entries(results.versions).map(([k, v]) => `${k} ${v}`).join(", ")}.`, "",
    "Every figure is compared with a baseline measured in the same run on the same database; ratios matter more than absolute times on these noisy machines.", "",
    "## 1. Export of multi_agent_log (API, queued, to finished file) vs psql \\copy of the same SELECT", "",
    "| prompts | API (s) | psql \\copy (s) | ratio | worker peak RSS (MB) |", "| --- | --- | --- | --- | --- |",
    ...results.sizes.map((s: any) => `| ${s.prompts} | ${s.export.api_s} | ${s.export.psql_copy_s} | ${s.export.ratio} | ${s.export.worker_peak_rss_mb} |`), "",
    "The same export with `EXPORT_STORAGE=s3`, to s3rver on loopback (its own worker process), against the local export above:", "",
    "| prompts | S3 (s) | ratio to local | S3 worker peak RSS (MB) |", "| --- | --- | --- | --- |",
    ...results.sizes.map((s: any) => `| ${s.prompts} | ${s.s3_export.s3_s} | ${s.s3_export.ratio_to_local} | ${s.s3_export.worker_peak_rss_mb} |`), "",
    "## 2. agent_effectiveness under load (10 concurrent clients)", "",
    "| prompts | REST user p50/p99 ms (req/s) | REST admin p50/p99 ms (req/s) | SQL user p50/p99 ms | SQL admin p50/p99 ms (q/s) | GROUP BY baseline admin p50 ms | speed-up |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...results.sizes.map((s: any) => {
      const e = s.effectiveness;
      return `| ${s.prompts} | ${e.rest_user.p50_ms}/${e.rest_user.p99_ms} (${e.rest_user.requests_per_s}) | ${e.rest_admin.p50_ms}/${e.rest_admin.p99_ms} (${e.rest_admin.requests_per_s}) | ${e.sql_user.p50_ms}/${e.sql_user.p99_ms} | ${e.sql_admin.p50_ms}/${e.sql_admin.p99_ms} (${e.sql_admin.queries_per_s}) | ${e.group_by_baseline_admin.p50_ms} | ${round(e.group_by_baseline_admin.p50_ms / e.sql_admin.p50_ms, 0)}x |`;
    }), "",
    "Every request's session is checked in SQL (issue 12). REST agent_effectiveness p50 here and on the previous release (its own database, same demo data), 10 clients, the gateways taking turns, median of 3 rounds:", "",
    "| prompts | user p50 ms | previous release | extra | admin p50 ms | previous release | extra |", "| --- | --- | --- | --- | --- | --- | --- |",
    ...results.sizes.filter((s: any) => s.session).map((s: any) => `| ${s.prompts} | ${s.session.user_p50_ms} | ${s.session.previous_user_p50_ms} | ${s.session.user_extra_ms} | ${s.session.admin_p50_ms} | ${s.session.previous_admin_p50_ms} | ${s.session.admin_extra_ms} |`), "",
    "## 3. Job pickup (request_export commit to task start)", "",
    `${results.pickup.jobs} jobs, one at a time: p50 ${results.pickup.p50_ms} ms, p99 ${results.pickup.p99_ms} ms.`, "",
    "## 4. Write path through GraphQL", "",
    `${results.writes.clients} clients for ${results.writes.seconds} s after ${WARM_UP_MS / 1000} s of the same writes unmeasured, each prompt = 1 prompt + 3 versions + 3 scores + best head. The previous release (${PREVIOUS_RELEASE}, issue 14's "today") runs its eight mutations on its own gateway and database, taking ${TURNS} turns of ${TURN_MS / 1000} s each with recordRun after ${WARM_UP_MS / 1000} s each unmeasured (each turn's prompts/s in brackets): how fast these machines run drifts over minutes of load, so the ratio of the two measured side by side is the figure to trust. CPU per prompt: the gateway's and the bench client's from /proc, and the rest of the machine's busy time (PostgreSQL).`, "",
    "| path | users | prompts/s | vs previous release | vs 8 mutations here | CPU ms per prompt: gateway / client / rest (PostgreSQL) | machine busy |", "| --- | --- | --- | --- | --- | --- | --- |",
    ...[
      ["8 single mutations, previous release", results.runs.previous_release_8_mutations],
      ["8 single mutations", results.writes],
      ["1 recordRun", results.runs.users_20],
      ["1 recordRun", { ...results.runs.user_1, users: 1 }],
    ].map(([path, r]: any[]) => {
      const turns = r.turns_prompts_per_s ? ` (${r.turns_prompts_per_s.join(", ")})` : "";
      return `| ${path} | ${r.users ?? r.clients} | ${r.prompts_per_s}${turns} | ${round(r.prompts_per_s / results.runs.previous_release_8_mutations.prompts_per_s, 1)}x | ${round(r.prompts_per_s / results.writes.prompts_per_s, 1)}x | ${r.cpu_ms_per_prompt.gateway} / ${r.cpu_ms_per_prompt.client} / ${r.cpu_ms_per_prompt.rest_of_machine} | ${r.machine_busy} |`;
    }), "",
    "## 5. 10 writers of one user (SQL; each transaction = 1 prompt + 1 version + 1 judge score)", "",
    `${results.contention.rounds} rounds of ${results.contention.seconds} s per mode, the modes taking turns (the order alternating): median tps per mode, and the median of each round's ratios.`, "",
    "| bookkeeping (app_user, RLS, triggers) | tracking triggers disabled | plain copies of the tables (no RLS, no triggers) |", "| --- | --- | --- |",
    `| ${results.contention.bookkeeping_tps} tps | ${results.contention.no_bookkeeping_tps} tps (bookkeeping = ${results.contention.vs_no_bookkeeping}x) | ${results.contention.plain_tables_tps} tps (bookkeeping = ${results.contention.vs_plain_tables}x) |`, "",
    ...(results.noisy ? [
      "## 6. Noisy neighbours: user B while user A attacks", "",
      `Gateway with default settings. A: 8 clients sending the heaviest GraphQL read the limits allow (5 pages of 1000 versions), 50 clients sending wrong-password sign-ins without pause, and a SQL login holding B's export lock key, the migration keys and running pg_sleep(600). A has ${results.noisy.scale_prompts_of_attacker} prompts.`, "",
      "| B's /api/agents/effectiveness | p50 ms | p99 ms | req/s | non-2xx |", "| --- | --- | --- | --- | --- |",
      `| without attack | ${results.noisy.baseline.p50_ms} | ${results.noisy.baseline.p99_ms} | ${results.noisy.baseline.requests_per_s} | ${results.noisy.baseline.non_2xx} |`,
      `| under attack | ${results.noisy.attack.p50_ms} | ${results.noisy.attack.p99_ms} | ${results.noisy.attack.requests_per_s} | ${results.noisy.attack.non_2xx} |`, "",
      `B's export: ${results.noisy.victim_export.status} (${results.noisy.victim_export.records} records). /readyz: ${results.noisy.readyz.failed} of ${results.noisy.readyz.probes} probes failed. Gateway peak RSS during the attack: ${results.noisy.gateway_peak_rss_mb} MB. A's heavy queries answered ${results.noisy.attacker_heavy_queries.answered}, refused ${results.noisy.attacker_heavy_queries.refused}, connection errors ${results.noisy.attacker_heavy_queries.failed}. Wrong sign-ins answered: ${JSON.stringify(results.noisy.wrong_sign_ins)}. The login's pg_sleep(600): ${results.noisy.reader_long_query}.`, "",
    ] : []),
    "## Targets", "",
    ...results.targets.map((t: any) => `- ${t.met ? "met" : "NOT met"}: ${t.target} (measured: ${t.measured})`), "",
  ];
  return lines.join("\n");
}

async function main() {
  const db = await database();
  const exportDir = await mkdtemp(path.join(os.tmpdir(), "prompter-bench-exports-"));
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  const children: ChildProcess[] = [];
  const s3 = await startS3();
  let previous: Awaited<ReturnType<typeof startPreviousRelease>> | undefined;
  try {
    log("migrating");
    await migrateDatabase(db.url, { authenticatorUrl: db.authUrl });
    const users = (await pool.query<{ id: string }>(
      "insert into app_public.users (username, is_admin) select 'bench_' || i, i = 0 from generate_series(0, 21) i returning id")).rows.map((r) => r.id);
    const [adminId, dataUser, ...others] = users;
    // Sections 2 and 4 load the gateway with up to 20 concurrent clients of one user; section 6 restarts it with the default limit.
    children.push(startProcess("server", db, exportDir, { CALLER_MAX_CONCURRENT: "20" }), await startWorkerProcess(pool, db, exportDir));
    let worker = children[1];
    await waitFor(async () => (await fetch(`${base}/readyz`)).ok, "the server to be ready");

    const sizes = [];
    let generated = 0;
    for (const size of SIZES) {
      log(`generating ${size} prompts`);
      const started = performance.now();
      await pool.query("select app_private.generate_demo($1, $2)", [dataUser, size - generated]);
      await pool.query("vacuum analyze");
      const demo_s = round((performance.now() - started) / 1000, 1);
      generated = size;
      const measured: Record<string, unknown> = { prompts: size, demo_generation_s: demo_s };
      if (selected("export")) {
        log(`exporting at ${size}`);
        const exportResult = await benchExport(pool, db.url, dataUser, size, worker);
        log(`exporting to S3 at ${size}`);
        await stopProcess(worker);
        measured.export = exportResult;
        measured.s3_export = await benchS3Export(pool, db, dataUser, size, exportResult.api_s, s3.env);
        children[1] = worker = await startWorkerProcess(pool, db, exportDir);
      }
      if (selected("effectiveness")) {
        log(`effectiveness at ${size}`);
        measured.effectiveness = await benchEffectiveness(db.url, dataUser, adminId);
      }
      // Up to 100k prompts (or at the smallest size): the per-agent figures it reads do not grow with the data.
      if (selected("session") && (size <= 100_000 || size === SIZES[0])) {
        log(`session check vs the previous release at ${size}`);
        previous ??= await startPreviousRelease(db.superuserUrl, exportDir);
        await previous.generate(size);
        measured.session = await benchSessionCost(previous, dataUser, adminId);
      }
      if (selected("feeds")) {
        log(`feeds at ${size}`);
        measured.feeds = await benchFeeds(pool, dataUser, size, worker.pid!);
      }
      sizes.push(measured);
    }
    // Kept for the write paths' baseline: the previous release's eight mutations.
    if (!selected("runs")) {
      await previous?.stop();
      previous = undefined;
    }
    const only = async <T>(section: string, measure: () => Promise<T>): Promise<T | undefined> => {
      if (!selected(section)) return undefined;
      log(section);
      return measure();
    };
    const pickup = await only("pickup", () => benchPickup(pool, others));
    const writes = await only("writes", () => benchWrites(others, children[0].pid!));
    const runs = await only("runs", async () => {
      previous ??= await startPreviousRelease(db.superuserUrl, exportDir);
      const measured = await benchRunsAgainstPreviousRelease(previous, others, children[0].pid!);
      await previous.stop();
      previous = undefined;
      return measured;
    });
    const contention = await only("contention", () => benchContention(pool, db.url, dataUser));
    const noisy = await only("noisy", async () => {
      // Restarted with the default limits; one that stopped already (stopped by someone else on a shared machine) is only started.
      if (children[0].exitCode === null && children[0].signalCode === null) {
        children[0].kill("SIGTERM");
        await new Promise((resolve) => children[0].once("exit", resolve));
      } else log(`the server had stopped (${children[0].exitCode ?? children[0].signalCode}); starting it again`);
      children[0] = startProcess("server", db, exportDir);
      await waitFor(async () => (await fetch(`${base}/readyz`)).ok, "the server to be ready again");
      return benchNoisyNeighbours(pool, db.url, children[0], dataUser);
    });
    if (ONLY) {
      log(JSON.stringify({ sizes, pickup, writes, runs, contention, noisy }, null, 2));
      return;
    }
    if (!pickup || !writes || !runs || !contention || !noisy) throw new Error("unreachable: every section ran");
    const sizesMeasured = sizes as any[];

    const largest = sizesMeasured[sizesMeasured.length - 1];
    const hundredK = sizesMeasured.find((s) => s.prompts === 100_000);
    const sessionCost = sizesMeasured.findLast((s) => s.session);
    const results = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpu: os.cpus()[0].model, memory_gb: round(os.totalmem() / 2 ** 30, 1), os: `${os.type()} ${os.release()}` },
      versions: await versions(pool),
      sizes, pickup, writes, runs, contention, noisy,
      targets: [
        { target: `export within 1.10x of psql \\copy at ${largest.prompts} prompts`, measured: `${largest.export.ratio}x`, met: largest.export.ratio <= 1.1 },
        ...(hundredK ? [{ target: "worker RSS growth under 64 MB from 100k to the largest size", measured: `${round(largest.export.worker_peak_rss_mb - hundredK.export.worker_peak_rss_mb, 1)} MB`, met: largest.export.worker_peak_rss_mb - hundredK.export.worker_peak_rss_mb < 64 }] : []),
        ...(hundredK ? [{ target: "S3 worker RSS growth under 64 MB from 100k to the largest size", measured: `${round(largest.s3_export.worker_peak_rss_mb - hundredK.s3_export.worker_peak_rss_mb, 1)} MB`, met: largest.s3_export.worker_peak_rss_mb - hundredK.s3_export.worker_peak_rss_mb < 64 }] : []),
        { target: `agent_effectiveness p50 under 10 ms for an admin at ${largest.prompts} prompts (SQL)`, measured: `${largest.effectiveness.sql_admin.p50_ms} ms`, met: largest.effectiveness.sql_admin.p50_ms < 10 },
        { target: `agent_effectiveness p50 under 10 ms for an admin at ${largest.prompts} prompts (REST)`, measured: `${largest.effectiveness.rest_admin.p50_ms} ms`, met: largest.effectiveness.rest_admin.p50_ms < 10 },
        ...(sessionCost ? [{ target: `agent_effectiveness REST p50 at most 1 ms over the previous release at ${sessionCost.prompts} prompts (user, admin)`, measured: `${signed(sessionCost.session.user_extra_ms)} ms, ${signed(sessionCost.session.admin_extra_ms)} ms`, met: sessionCost.session.user_extra_ms <= 1 && sessionCost.session.admin_extra_ms <= 1 }] : []),
        { target: "job pickup p50 under 20 ms", measured: `${pickup.p50_ms} ms`, met: pickup.p50_ms < 20 },
        { target: "10 writers of one user reach 0.8x the throughput without bookkeeping", measured: `${contention.vs_no_bookkeeping}x`, met: contention.vs_no_bookkeeping >= 0.8 },
        { target: "10 writers of one user reach 0.5x the throughput on plain copies of the tables", measured: `${contention.vs_plain_tables}x`, met: contention.vs_plain_tables >= 0.5 },
        { target: "recordRun at 20 clients: 500 prompts/s through GraphQL", measured: `${runs.users_20.prompts_per_s} prompts/s (turns: ${runs.users_20.turns_prompts_per_s.join(", ")})`, met: runs.users_20.prompts_per_s >= 500 },
        // Issue 14's "about 9x today": 500 over the 56 prompts/s of the previous release's eight mutations, measured here in the same run.
        { target: `recordRun at 20 clients: about 9x the eight mutations of the previous release (${PREVIOUS_RELEASE}) in the same run`, measured: `${runs.vs_previous_release}x (${runs.users_20.prompts_per_s} vs ${runs.previous_release_8_mutations.prompts_per_s} prompts/s)`, met: runs.vs_previous_release >= 8.9 },
        { target: "B's effectiveness p99 under 100 ms while A attacks", measured: `${noisy.attack.p99_ms} ms (${noisy.baseline.p99_ms} ms without)`, met: noisy.attack.p99_ms < 100 && noisy.attack.non_2xx === 0 },
        { target: "B's export succeeds and /readyz stays 200 while A attacks", measured: `${noisy.victim_export.status}, ${noisy.readyz.failed} failed probes`, met: noisy.victim_export.status === "succeeded" && noisy.readyz.failed === 0 },
        { target: "gateway RSS under 512 MB while A attacks", measured: `${noisy.gateway_peak_rss_mb} MB`, met: noisy.gateway_peak_rss_mb < 512 },
      ],
    };
    await writeFile(path.join(root, "bench/results.json"), `${JSON.stringify(results, null, 2)}\n`);
    await writeFile(path.join(root, "bench/RESULTS.md"), markdown(results));
    log(markdown(results));
  } finally {
    await previous?.stop();
    await Promise.all(children.map(stopProcess));
    await s3.stop();
    await pool.end();
    await db.stop();
    await rm(exportDir, { recursive: true, force: true });
  }
}

await main();
