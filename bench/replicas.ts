// Section "replicas": a multi_agent_log export of the largest size on a primary
// with a streaming standby of its own (test/support/standby.ts), with and
// without REPLICA_DATABASE_URL. Measures the primary's CPU during the export
// (its postmaster and every backend, as a fraction of one core) and recordRun
// throughput on the primary during the export against the same with no export
// running just before and just after, measured in the same run. The primary and its clients are pinned to
// core 0, the standby and the worker to core 1, so on this one machine each
// side stands for a host of its own.
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { migrateDatabase } from "../src/db/migrate.ts";
import { caughtUp, startPrimaryAndStandby, type Server } from "../test/support/standby.ts";
import { log, round, SIZES, startProcess, stopProcess, waitFor } from "./harness.ts";

const OWNER = "prompter_bench_owner";
const PASSWORD = "prompter-bench-password-0123456789";
const WRITE_SECONDS = 3;
const WRITERS = 10;

/**
 * CPU seconds used so far by the server: its postmaster and live children
 * (backends, walsender, ...), and the children that have exited, which the
 * postmaster has reaped (cutime, cstime).
 */
async function serverCpuSeconds(server: Server): Promise<number> {
  const ticks = await Promise.all((await readdir("/proc")).filter((entry) => /^\d+$/.test(entry)).map(async (pid) => {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    // Fields after the command's closing parenthesis: state (3rd field), ppid, ..., utime (14th), stime, cutime, cstime.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
    if (Number(pid) === server.pid) return fields[11] + fields[12] + fields[13] + fields[14];
    return fields[1] === server.pid ? fields[11] + fields[12] : 0;
  }));
  return ticks.reduce((sum, tick) => sum + tick, 0) / 100;
}

/** recordRun calls per second by WRITERS clients on the primary for `seconds`, in a child process pinned to core 0. */
function recordRunsPerSecond(url: string, userId: string, seconds: number): Promise<number> {
  const child: ChildProcess = fork(fileURLToPath(new URL("./replica-writers.ts", import.meta.url)), [url, userId, String(seconds), String(WRITERS)], {
    execArgv: [],
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  spawnPinned(child.pid!, "0");
  return new Promise((resolve, reject) => {
    child.once("message", (message) => resolve(Number(message)));
    child.once("exit", (code) => (code ? reject(new Error(`the writers exited with ${code}`)) : undefined));
  });
}

/** Pins a running process, every thread of it, to `cpus`. */
function spawnPinned(pid: number, cpus: string): void {
  execFileSync("taskset", ["-a", "-pc", cpus, String(pid)], { stdio: "ignore" });
}

export async function benchReplicas(superuserUrl: string, exportDir: string) {
  const size = Number(process.env.BENCH_REPLICA_SIZE ?? SIZES[SIZES.length - 1]);
  const pair = await startPrimaryAndStandby(superuserUrl, Number(process.env.BENCH_REPLICA_PG_PORT ?? 54461), {
    logStatements: false,
    // As the README advises for exports on a replica: writes on the primary must not cancel them.
    hotStandbyFeedback: true,
    cpus: { primary: "0", standby: "1" },
  });
  const admin = new pg.Client({ connectionString: pair.primary.url("postgres") });
  await admin.connect();
  await admin.query(`create role ${OWNER} login createrole createdb password '${PASSWORD}'`);
  await admin.query(`create database prompter_bench owner ${OWNER}`);
  await admin.end();
  const db = { url: pair.primary.url("prompter_bench", OWNER, PASSWORD), authUrl: pair.primary.url("prompter_bench", "prompter_bench_auth", PASSWORD) };
  const standbyUrl = pair.standby.url("prompter_bench", OWNER, PASSWORD);
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  try {
    await migrateDatabase(db.url, { authenticatorUrl: db.authUrl });
    const { rows: [{ id: userId }] } = await pool.query<{ id: string }>("insert into app_public.users (username) values ('replica_bench') returning id");
    log(`replicas: generating ${size} prompts on the primary`);
    await pool.query("select app_private.generate_demo($1, $2)", [userId, size]);
    await pool.query("vacuum analyze");
    await caughtUp(db.url, standbyUrl);

    const measure = async (replica: boolean) => {
      const worker = startProcess("worker", db, exportDir, {
        WORKER_CONCURRENCY: "1",
        ...(replica ? { REPLICA_DATABASE_URL: standbyUrl, REPLICA_MAX_WAIT: "30" } : {}),
      });
      spawnPinned(worker.pid!, "1");
      try {
        await waitFor(async () => (await pool.query("select from app_private.worker_heartbeats where pid = $1", [worker.pid])).rowCount === 1, "the worker");
        const alone = await recordRunsPerSecond(db.url, userId, WRITE_SECONDS);
        // The export alone, for its time and the primary's CPU.
        const cpuBefore = await serverCpuSeconds(pair.primary);
        const started = performance.now();
        await waitForExport(pool, await requestExport(pool, userId));
        const seconds = (performance.now() - started) / 1000;
        const cpu = (await serverCpuSeconds(pair.primary)) - cpuBefore;
        // The same export again, with the writers running meanwhile.
        const id = await requestExport(pool, userId);
        const during = await recordRunsPerSecond(db.url, userId, WRITE_SECONDS);
        const { rows: [{ status }] } = await pool.query<{ status: string }>("select status from app_public.exports where id = $1", [id]);
        await waitForExport(pool, id);
        // The machine's speed drifts: the baseline is the mean of a turn before the exports and one after.
        const aloneAfter = await recordRunsPerSecond(db.url, userId, WRITE_SECONDS);
        const baseline = (alone + aloneAfter) / 2;
        return {
          export_s: round(seconds, 2),
          primary_core_share: round(cpu / seconds, 3),
          record_runs_per_s_alone: round(baseline, 1),
          record_runs_per_s_during_export: round(during, 1),
          ratio: round(during / baseline, 3),
          // Only an export still running when the writers stop had them run beside it throughout.
          export_outlasted_the_writes: status !== "succeeded",
        };
      } finally {
        await stopProcess(worker);
      }
    };
    log("replicas: export on the primary (no replica)");
    const primaryOnly = await measure(false);
    log("replicas: export on the standby");
    const withReplica = await measure(true);
    return { prompts: size, without_replica: primaryOnly, with_replica: withReplica };
  } finally {
    await pool.end();
    await pair.stop();
  }
}

async function requestExport(pool: pg.Pool, userId: string): Promise<string> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [userId]);
    const { rows } = await client.query<{ id: string }>("select id from app_public.request_export('multi_agent_log', '{}')");
    await client.query("commit");
    return rows[0].id;
  } finally {
    client.release();
  }
}

async function waitForExport(pool: pg.Pool, id: string): Promise<void> {
  let row: { status: string; error_message: string | null } | undefined;
  await waitFor(async () => {
    row = (await pool.query("select status, error_message from app_public.exports where id = $1", [id])).rows[0];
    return row!.status === "succeeded" || row!.status === "failed";
  }, `export ${id}`, 20);
  if (row!.status !== "succeeded") throw new Error(`export ${id} failed: ${row!.error_message}`);
}
