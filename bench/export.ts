import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import S3rver from "s3rver";
import pg from "pg";
import { api, median, peakRssMb, round, run, startWorkerProcess, stopProcess, tokenFor } from "./harness.ts";

/** The SELECT the multi_agent_log export copies from, as the task gets it. */
export async function multiAgentLogQuery(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query("select app_hidden.multi_agent_log_query(false) as sql");
  return rows[0].sql;
}

/** Median seconds of three multi_agent_log exports through the API, waited for. */
export async function apiExportSeconds(userId: string, size: number): Promise<number> {
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

export async function benchExport(pool: pg.Pool, url: string, userId: string, size: number, worker: ChildProcess) {
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
export async function benchS3Export(pool: pg.Pool, db: { url: string; authUrl: string }, userId: string, size: number, localSeconds: number, s3Env: Record<string, string>) {
  const worker = await startWorkerProcess(pool, db, "/nonexistent/prompter-bench-exports", s3Env);
  try {
    const s3_s = await apiExportSeconds(userId, size);
    return { s3_s: round(s3_s, 3), ratio_to_local: round(s3_s / localSeconds, 3), worker_peak_rss_mb: round(await peakRssMb(worker.pid!), 1) };
  } finally {
    await stopProcess(worker);
  }
}

export async function startS3(): Promise<{ env: Record<string, string>; stop(): Promise<void> }> {
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
