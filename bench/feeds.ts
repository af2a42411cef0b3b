// The feeds section of `npm run bench` (BENCH_ONLY=feeds), at each size:
//   * backfill: run 1 of a multi_agent_log feed in Parquet, JSONL and JSONL
//     (gzip) against the multi_agent_log CSV export of the same rows (and
//     gzipped JSONL against the gzipped CSV export), by the same worker, each
//     timed from the task's start to its end as recorded in the database
//     (median of three); target: within 1.5x of the CSV export;
//   * one-off exports of multi_agent_log in Parquet and JSONL (gzip), timed
//     the same way, against the same CSV export;
//   * incremental: run 2 after 10k changed scores (10k prompts' rows to write
//     again), in Parquet; target: under 1 s;
//   * the worker's RSS, sampled while the Parquet backfill runs; target: its
//     growth from 100k to 1M prompts under 64 MB.
import { readFile } from "node:fs/promises";
import type pg from "pg";

const CHANGES = 10_000;
const round = (n: number, digits = 3) => Number(n.toFixed(digits));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/** Runs `work` while sampling the process's RSS every 50 ms; returns its result and the highest RSS seen. */
async function sampledRss<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peakMb: number }> {
  let peakMb = await rssMb(pid);
  const timer = setInterval(() => void rssMb(pid).then((mb) => (peakMb = Math.max(peakMb, mb))), 50);
  try {
    return { result: await work(), peakMb };
  } finally {
    clearInterval(timer);
  }
}

async function asUser<T>(pool: pg.Pool, userId: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [userId]);
    const result = await work(client);
    await client.query("commit");
    return result;
  } finally {
    client.release();
  }
}

async function until<T>(read: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 30 * 60_000;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A run of the feed, waited for: its seconds (task start to end) and rows. */
async function feedRun(pool: pg.Pool, userId: string, feedId: string): Promise<{ seconds: number; rows: number }> {
  const number = await asUser(pool, userId, async (client) => (await client.query("select number from app_public.request_feed_run($1)", [feedId])).rows[0].number);
  return until(async () => {
    const { rows } = await pool.query(
      "select status, rows, extract(epoch from finished_at - started_at) as seconds, error_message from app_public.feed_runs where feed_id = $1 and number = $2",
      [feedId, number],
    );
    if (rows[0].status === "failed") throw new Error(`feed ${feedId} run ${number} failed: ${rows[0].error_message}`);
    return rows[0].status === "succeeded" ? { seconds: Number(rows[0].seconds), rows: Number(rows[0].rows) } : undefined;
  }, `run ${number} of feed ${feedId}`);
}

/** A one-off multi_agent_log export in the format, waited for (aged past the per-minute rate limit first). */
async function oneOffExport(pool: pg.Pool, userId: string, format = "csv", options: object = {}): Promise<{ seconds: number; rows: number }> {
  await pool.query("update app_public.exports set requested_at = requested_at - interval '1 minute' where user_id = $1", [userId]);
  const id = await asUser(pool, userId, async (client) =>
    (await client.query("insert into app_public.exports (kind, format, options) values ('multi_agent_log', $1, $2) returning id", [format, JSON.stringify(options)])).rows[0].id);
  return until(async () => {
    const { rows } = await pool.query("select status, rows, extract(epoch from finished_at - started_at) as seconds from app_public.exports where id = $1", [id]);
    if (rows[0].status === "failed") throw new Error(`export ${id} failed`);
    return rows[0].status === "succeeded" ? { seconds: Number(rows[0].seconds), rows: Number(rows[0].rows) } : undefined;
  }, `export ${id}`);
}

/** Median seconds of three one-off exports in the format. */
async function oneOffSeconds(pool: pg.Pool, userId: string, format: string, options: object = {}): Promise<number> {
  return median(await oneOffRuns(pool, userId, format, options));
}

async function oneOffRuns(pool: pg.Pool, userId: string, format: string, options: object = {}): Promise<number[]> {
  const seconds: number[] = [];
  for (let i = 0; i < 3; i++) seconds.push((await oneOffExport(pool, userId, format, options)).seconds);
  return seconds;
}

/** A fresh feed's backfill (run 1), three times: median seconds, and the worker's peak RSS over them. */
async function backfill(pool: pg.Pool, userId: string, format: string, options: object, workerPid: number) {
  const seconds: number[] = [];
  let peakMb = 0;
  let feedId = "";
  for (let i = 0; i < 3; i++) {
    feedId = await asUser(pool, userId, async (client) =>
      (await client.query("select id from app_public.create_feed('multi_agent_log', $1, null, '{}', $2)", [format, JSON.stringify(options)])).rows[0].id);
    const { result, peakMb: peak } = await sampledRss(workerPid, () => feedRun(pool, userId, feedId));
    seconds.push(result.seconds);
    peakMb = Math.max(peakMb, peak);
  }
  return { seconds: median(seconds), peakMb, feedId };
}

export async function benchFeeds(pool: pg.Pool, userId: string, size: number, workerPid: number) {
  // The baseline at the start and again at the end (the median of the six):
  // right after the data is generated the machine is still writing it out.
  const csvRuns = await oneOffRuns(pool, userId, "csv");
  const csvGzip_s = await oneOffSeconds(pool, userId, "csv", { gzip: true });
  const parquetExport_s = await oneOffSeconds(pool, userId, "parquet");
  const jsonlExport_s = await oneOffSeconds(pool, userId, "jsonl", { gzip: true });
  const parquet = await backfill(pool, userId, "parquet", {}, workerPid);
  const jsonlPlain = await backfill(pool, userId, "jsonl", {}, workerPid);
  const jsonl = await backfill(pool, userId, "jsonl", { gzip: true }, workerPid);

  // 10k changes: a score of each of 10k prompts, spread over the table.
  const changes = Math.min(CHANGES, size);
  await asUser(pool, userId, (client) =>
    client.query(
      `update app_public.judge_scores s set clarity = round((random() * 10)::numeric, 1)
        where s.id in (select v.id from app_public.prompt_versions v
                        where v.source = 'syntax' and v.prompt_id % $1 = 0 limit $2)`,
      [Math.max(1, Math.floor(size / changes)), changes],
    ));
  const incremental = await feedRun(pool, userId, parquet.feedId);
  const csv_s = median([...csvRuns, ...(await oneOffRuns(pool, userId, "csv"))]);
  return {
    csv_export_s: round(csv_s),
    csv_gzip_export_s: round(csvGzip_s),
    parquet_backfill_s: round(parquet.seconds),
    jsonl_backfill_s: round(jsonlPlain.seconds),
    jsonl_gzip_backfill_s: round(jsonl.seconds),
    parquet_vs_csv: round(parquet.seconds / csv_s, 2),
    jsonl_vs_csv: round(jsonlPlain.seconds / csv_s, 2),
    jsonl_gzip_vs_csv: round(jsonl.seconds / csv_s, 2),
    jsonl_gzip_vs_csv_gzip: round(jsonl.seconds / csvGzip_s, 2),
    one_off: {
      parquet_export_s: round(parquetExport_s),
      jsonl_gzip_export_s: round(jsonlExport_s),
      parquet_vs_csv: round(parquetExport_s / csv_s, 2),
      jsonl_vs_csv: round(jsonlExport_s / csv_s, 2),
    },
    incremental: { changed_prompts: incremental.rows, seconds: round(incremental.seconds) },
    worker_peak_rss_mb: round(Math.max(parquet.peakMb, jsonlPlain.peakMb, jsonl.peakMb), 1),
  };
}
