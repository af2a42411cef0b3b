// Bench section "analytics" (issue 31): the per-day agent analytics at
// BENCH_ANALYTICS_PROMPTS prompts (default 1,000,000) spread over 90 days and 10
// users, in a database of its own (BENCH_DATABASE + "_analytics"), through a
// gateway of its own (BENCH_PORT + 30):
//   * REST p50 of a 30-day window, a 90-day daily series, the head-to-head table
//     and the ratings, for a user and an admin, next to the GROUP BY over the
//     rows that a SQL user needed for the same window;
//   * recordRun throughput in SQL (8 clients, 8 users, autocommit) and through
//     REST (POST /api/runs, 16 clients, a gateway of this tree on each database,
//     BENCH_PORT + 31 and + 32) on a fresh database of this schema and one of the
//     schema before the analytics (BEFORE_ANALYTICS, or BENCH_ANALYTICS_BASE),
//     side by side in alternating turns.
// Run alone: BENCH_ONLY=analytics npm run bench (or node bench/analytics.ts).
// BENCH_ANALYTICS_PROMPTS=0 measures recordRun side by side only (no reads).
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { provisionDatabase, withCredentials, withDatabaseName } from "../src/db/embedded.ts";
import { migrateDatabase } from "../src/db/migrate.ts";
import { signToken } from "../src/server/auth.ts";

/** The last release before the analytics (and this wave): the write path they are measured against. */
const BEFORE_ANALYTICS = "93cfff1";
import { median, round, SECRET } from "./harness.ts";
import { p50Ms } from "./session.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const OWNER = "prompter_bench_owner";
const PASSWORD = "prompter-bench-password-0123456789";
const DAYS = 90;
const USERS = 10;
const log = (message: string) => process.stderr.write(`analytics: ${message}\n`);
const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

/** A database of its own, made as on managed PostgreSQL (an owner, an authenticator), migrated from `source` (a checkout) or this tree. */
async function freshDatabase(superuserUrl: string, name: string, source?: string) {
  const admin = new pg.Client({ connectionString: superuserUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${admin.escapeIdentifier(name)} with (force)`);
  await admin.query(`drop role if exists ${admin.escapeIdentifier(`${name}_auth`)}`);
  await admin.end();
  await provisionDatabase(superuserUrl, { database: name, owner: OWNER, ownerPassword: PASSWORD });
  const url = withCredentials(withDatabaseName(superuserUrl, name), OWNER, PASSWORD);
  const authUrl = withCredentials(url, `${name}_auth`, PASSWORD);
  await migrateDatabase(url, { authenticatorUrl: authUrl, root: source });
  return { url, authUrl };
}

/** A gateway of this tree on `port` for the database. */
async function startGateway(db: { url: string; authUrl: string }, port: number, exportDir: string): Promise<ChildProcess> {
  const server = spawn(path.join(root, "node_modules/.bin/node"), ["src/cli.ts", "server"], {
    cwd: root, stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, DATABASE_URL: db.url, AUTH_DATABASE_URL: db.authUrl, PORT: String(port), JWT_SECRET: SECRET, EXPORT_DIR: exportDir,
      LOG_LEVEL: "warn", NODE_ENV: "production", CALLER_MAX_CONCURRENT: "20" },
  });
  for (let i = 0; !(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)); i++) {
    if (i > 600) throw new Error(`the gateway on port ${port} did not start`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return server;
}

async function stopGateway(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return;
  server.kill("SIGTERM");
  await new Promise((resolve) => server.once("exit", resolve));
}

const tokenFor = (role: "app_user" | "app_admin", id: string) =>
  signToken({ role, user_id: id, exp: Math.floor(Date.now() / 1000) + 3600, token_generation: 0 }, SECRET);

/** `prompts` prompts over the last DAYS days (one statement per day), 3 scored versions each and a best head, for `users`. */
async function generate(pool: pg.Pool, users: string[], prompts: number) {
  for (let d = 0; d < DAYS; d++) {
    const count = Math.floor(prompts / DAYS) + (d < prompts % DAYS ? 1 : 0);
    await pool.query(`
      with p as (
        insert into app_public.prompts (user_id, text, created_at)
        select ($1::bigint[])[1 + i % cardinality($1::bigint[])], 'bench prompt ' || i, now() - $2 * interval '1 day'
          from generate_series(1, $3) i returning id, user_id, created_at
      ), v as (
        insert into app_public.prompt_versions (prompt_id, user_id, text, source, created_at)
        select p.id, p.user_id, 'improved', a.name, p.created_at from p cross join (values ('syntax'), ('structure'), ('domain')) a(name)
        returning id, prompt_id, user_id, source
      ), s as (
        insert into app_public.judge_scores (prompt_version_id, user_id, source, clarity, specificity, actionability, structure, context_use)
        select v.id, v.user_id, v.source, x, x, round((random() * 10)::numeric, 1), x, x
          from v cross join lateral (select round((random() * 10)::numeric, 1) as x) r
        returning prompt_version_id, user_id, source, total
      )
      insert into app_public.best_heads (prompt_id, prompt_version_id, user_id, source)
      select distinct on (v.prompt_id) v.prompt_id, v.id, v.user_id, v.source
        from v join s on s.prompt_version_id = v.id order by v.prompt_id, s.total desc, v.id`, [users, d, count]);
  }
  await pool.query("vacuum analyze");
}

/** What a SQL user ran before: the window's figures by GROUP BY over the rows (admin: every user's), median of 3. */
async function groupByMs(url: string, role: string, userId: string, from: string, to: string): Promise<number> {
  const client = new pg.Client({ connectionString: url, options: `-c role=${role} -c jwt.claims.user_id=${userId}` });
  await client.connect();
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    await client.query(`select v.source as agent, count(*) as total, count(b.prompt_id) as wins, avg(s.total) as avg_score
      from app_public.prompt_versions v left join app_public.best_heads b on b.prompt_version_id = v.id
      left join app_public.judge_scores s on s.prompt_version_id = v.id
     where v.created_at >= $1::date and v.created_at < $2::date group by v.source`, [from, to]);
    times.push(performance.now() - started);
  }
  await client.end();
  return round(median(times), 1);
}

const runJson = () => {
  const values = [0, 1, 2].map(() => Math.round(Math.random() * 100) / 10);
  return JSON.stringify({ prompt: "bench prompt", best_version: values.indexOf(Math.max(...values)),
    versions: ["syntax", "structure", "domain"].map((agent, i) => ({ agent, text: "improved",
      scores: { clarity: values[i], specificity: values[i], actionability: values[i], structure: values[i], context_use: values[i] } })) });
};

/** recordRun here and on the schema before the analytics, 8 clients of 8 users each, in alternating turns of 3 s. */
async function recordRunSideBySide(superuserUrl: string, database: string, port: number) {
  const base = process.env.BENCH_ANALYTICS_BASE ?? BEFORE_ANALYTICS;
  const checkout = await mkdtemp(path.join(os.tmpdir(), "prompter-bench-analytics-base-"));
  try {
    execFileSync("tar", ["-x", "-C", checkout], { input: execFileSync("git", ["archive", base, ".gmrc", "migrations", "sql"], { cwd: root }) });
    const databases = [await freshDatabase(superuserUrl, `${database}_rr`), await freshDatabase(superuserUrl, `${database}_rr_base`, checkout)];
    const userIds: string[][] = [];
    const sides = await Promise.all(databases.map(async ({ url }, side) => {
      const owner = new pg.Client({ connectionString: url });
      await owner.connect();
      const users = (await owner.query<{ id: string }>("insert into app_public.users (username) select 'rr_' || i from generate_series(1, 8) i returning id")).rows;
      await owner.end();
      userIds[side] = users.map((u) => u.id);
      return Promise.all(users.map(async ({ id }) => {
        const client = new pg.Client({ connectionString: url, options: `-c role=app_user -c jwt.claims.user_id=${id}` });
        await client.connect();
        return client;
      }));
    }));
    const turn = async (clients: pg.Client[], ms: number) => {
      let runs = 0;
      const until = Date.now() + ms;
      await Promise.all(clients.map(async (client) => {
        while (Date.now() < until) {
          await client.query("select app_public.record_run($1)", [runJson()]);
          runs += 1;
        }
      }));
      return runs / (ms / 1000);
    };
    for (const side of sides) await turn(side, 3000);
    const turns: number[][] = [[], []];
    for (let i = 0; i < 10; i++) for (const k of i % 2 ? [1, 0] : [0, 1]) turns[k].push(round(await turn(sides[k], 3000), 0));
    for (const side of sides) for (const client of side) await client.end();
    const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
    const sql = { runs_per_s: round(sum(turns[0]) / 10, 1), base_runs_per_s: round(sum(turns[1]) / 10, 1),
      ratio: round(sum(turns[0]) / sum(turns[1]), 3), turns: turns[0], base_turns: turns[1] };
    // The same through REST (POST /api/runs, 16 keep-alive clients), a gateway of this tree on each database.
    const exportDir = await mkdtemp(path.join(os.tmpdir(), "prompter-bench-analytics-rr-"));
    const gateways = [await startGateway(databases[0], port + 1, exportDir), await startGateway(databases[1], port + 2, exportDir)];
    try {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
      const post = (side: number, client: number) => new Promise<void>((resolve, reject) => {
        const body = runJson();
        const request = http.request(`http://127.0.0.1:${port + 1 + side}/api/runs`, { method: "POST", agent, headers: {
          authorization: `Bearer ${tokenFor("app_user", userIds[side][client % 8])}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (response) => {
          response.resume();
          response.on("end", () => (response.statusCode === 201 ? resolve() : reject(new Error(`POST /api/runs: ${response.statusCode}`))));
        });
        request.on("error", reject);
        request.end(body);
      });
      const restTurn = async (side: number, ms: number) => {
        let runs = 0;
        const until = Date.now() + ms;
        await Promise.all(Array.from({ length: 16 }, async (_, client) => {
          while (Date.now() < until) {
            await post(side, client);
            runs += 1;
          }
        }));
        return runs / (ms / 1000);
      };
      await restTurn(0, 3000);
      await restTurn(1, 3000);
      const restTurns: number[][] = [[], []];
      for (let i = 0; i < 10; i++) for (const k of i % 2 ? [1, 0] : [0, 1]) restTurns[k].push(round(await restTurn(k, 3000), 0));
      agent.destroy();
      return { base_commit: base.slice(0, 7), sql, rest: { runs_per_s: round(sum(restTurns[0]) / 10, 1), base_runs_per_s: round(sum(restTurns[1]) / 10, 1),
        ratio: round(sum(restTurns[0]) / sum(restTurns[1]), 3), turns: restTurns[0], base_turns: restTurns[1] } };
    } finally {
      for (const gateway of gateways) await stopGateway(gateway);
      await rm(exportDir, { recursive: true, force: true });
    }
  } finally {
    await rm(checkout, { recursive: true, force: true });
  }
}

export async function benchAnalytics(options: { superuserUrl?: string; database?: string; port?: number } = {}) {
  const superuserUrl = options.superuserUrl ?? process.env.DATABASE_URL;
  if (!superuserUrl) throw new Error("the analytics bench needs DATABASE_URL (a superuser's)");
  const database = `${options.database ?? process.env.BENCH_DATABASE ?? "prompter_bench"}_analytics`;
  const port = options.port ?? Number(process.env.BENCH_PORT ?? 8901) + 30;
  const prompts = Number(process.env.BENCH_ANALYTICS_PROMPTS ?? 1_000_000);
  log("recordRun side by side");
  const recordRun = await recordRunSideBySide(superuserUrl, database, port);
  log(JSON.stringify(recordRun));
  if (prompts === 0) return { record_run: recordRun };
  const { url, authUrl } = await freshDatabase(superuserUrl, database);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  let server: ChildProcess | undefined;
  const exportDir = await mkdtemp(path.join(os.tmpdir(), "prompter-bench-analytics-"));
  try {
    const users = (await pool.query<{ id: string }>(
      "insert into app_public.users (username, is_admin) select 'bench_' || i, i = 0 from generate_series(0, $1) i returning id", [USERS])).rows.map((r) => r.id);
    const [adminId, ...writers] = users;
    log(`generating ${prompts} prompts over ${DAYS} days`);
    const started = performance.now();
    await generate(pool, writers, prompts);
    const generation_s = round((performance.now() - started) / 1000, 1);
    server = await startGateway({ url, authUrl }, port, exportDir);
    const origin = `http://127.0.0.1:${port}`;
    const callers = { user: tokenFor("app_user", writers[0]), admin: tokenFor("app_admin", adminId) };
    const paths = {
      window_30_days: `/api/agents/effectiveness?from=${day(-29)}&to=${day(1)}`,
      series_90_days: `/api/agents/effectiveness/series?bucket=day&from=${day(-89)}&to=${day(1)}`,
      head_to_head_90_days: `/api/agents/head-to-head?from=${day(-89)}&to=${day(1)}`,
      ratings_90_days: `/api/agents/ratings?from=${day(-89)}&to=${day(1)}`,
    };
    const rest: Record<string, Record<string, number>> = {};
    for (const [name, pathname] of Object.entries(paths)) {
      rest[name] = {};
      for (const [caller, bearer] of Object.entries(callers)) rest[name][`${caller}_p50_ms`] = await p50Ms(origin, pathname, bearer, 4);
    }
    log("GROUP BY baselines");
    const group_by_30_days = {
      user_ms: await groupByMs(url, "app_user", writers[0], day(-29), day(1)),
      admin_ms: await groupByMs(url, "app_admin", adminId, day(-29), day(1)),
    };
    return { prompts, days: DAYS, users: USERS, generation_s, rest, group_by_30_days, record_run: recordRun };
  } finally {
    if (server) await stopGateway(server);
    await pool.end();
    await rm(exportDir, { recursive: true, force: true });
  }
}

if (import.meta.main) console.log(JSON.stringify(await benchAnalytics(), null, 2));
