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
//   7. read replicas: a multi_agent_log export on a primary with a streaming
//      standby, with and without REPLICA_DATABASE_URL: the primary's CPU and
//      recordRun throughput during the export.
// Writes bench/results.json and bench/RESULTS.md. Not part of `npm test`.
// BENCH_ONLY=effectiveness,runs (any of SECTIONS) runs only those sections and
// prints their figures instead of writing the results files, for profiling one
// path. Each section is a file of its own (bench/<section>.ts) sharing
// bench/harness.ts; this driver builds the data and runs them in turn.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { ChildProcess } from "node:child_process";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { migrateDatabase } from "../src/db/migrate.ts";
import { base, database, DATABASE, log, PORT, root, round, SIZES, startProcess, startWorkerProcess, stopProcess, waitFor } from "./harness.ts";
import { benchExport, benchS3Export, startS3 } from "./export.ts";
import { benchPlainCopy } from "./plain-copy.ts";
import { benchEffectiveness } from "./effectiveness.ts";
import { startPreviousRelease, type PreviousRelease } from "./previous-release.ts";
import { benchSessionCost } from "./session.ts";
import { benchPickup } from "./pickup.ts";
import { benchWrites } from "./writes.ts";
import { benchRunsAgainstPreviousRelease } from "./runs.ts";
import { benchContention } from "./contention.ts";
import { benchNoisyNeighbours } from "./noisy.ts";
import { benchReplicas } from "./replicas.ts";
import { benchAnalytics } from "./analytics.ts";
import { benchFeeds } from "./feeds.ts";
import { markdown, summarise } from "./report.ts";

const SECTIONS = ["export", "effectiveness", "session", "pickup", "writes", "runs", "contention", "noisy", "replicas", "analytics", "feeds"];
const ONLY = process.env.BENCH_ONLY?.split(",");
const unknownSection = ONLY?.find((section) => !SECTIONS.includes(section));
if (unknownSection) throw new Error(`BENCH_ONLY: no section ${unknownSection}; the sections are ${SECTIONS.join(", ")}`);
const selected = (section: string) => !ONLY || ONLY.includes(section);

async function main() {
  const db = await database();
  const exportDir = await mkdtemp(path.join(os.tmpdir(), "prompter-bench-exports-"));
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  const children: ChildProcess[] = [];
  const s3 = await startS3();
  let previous: PreviousRelease | undefined;
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
        measured.plain_copy = await benchPlainCopy(pool, db.url, dataUser, exportResult.api_s);
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
    const replicas = await only("replicas", () => benchReplicas(db.superuserUrl, exportDir));
    const analytics = await only("analytics", () => benchAnalytics({ superuserUrl: db.superuserUrl, database: DATABASE, port: PORT + 30 }));
    if (ONLY) {
      log(JSON.stringify({ sizes, pickup, writes, runs, contention, noisy, replicas, analytics }, null, 2));
      return;
    }
    if (!pickup || !writes || !runs || !contention || !noisy || !replicas || !analytics) throw new Error("unreachable: every section ran");
    const results = await summarise(pool, { sizes, pickup, writes, runs, contention, noisy, replicas, analytics });
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
