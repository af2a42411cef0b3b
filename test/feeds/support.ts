// Helpers for the feed tests: feeds created and run as a user, the feed_run
// task called in this process with a storage or pool that fails where a test
// says (the crash points), and a warehouse (DuckDB) that applies every run's
// files in order, as a consumer would, to compare with the database.
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";
import type { JobHelpers } from "graphile-worker";
import { readFile } from "node:fs/promises";
import path from "node:path";
import type pg from "pg";
import type { Log } from "../../src/log.ts";
import { createMetrics } from "../../src/metrics.ts";
import { localStorage } from "../../src/storage/local.ts";
import type { ExportStorage } from "../../src/storage/index.ts";
import type { TaskContext } from "../../src/task-context.ts";
import feedRunTask, { type FeedManifest } from "../../src/tasks/feed_run.ts";

export interface Owner {
  role: "app_user" | "app_admin";
  userId: string;
}

/** Runs `work` as the owner in a transaction that commits (what the gateway does for a request). */
export async function asOwner<T>(pool: pg.Pool, owner: Owner, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true)", [owner.role, owner.userId]);
    const result = await work(client);
    await client.query("commit");
    return result;
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

export async function createFeed(pool: pg.Pool, owner: Owner, feed: { kind: string; format: string; options?: object; filters?: object; is_global?: boolean; every?: string }) {
  return asOwner(pool, owner, async (client) => {
    const { rows } = await client.query<{ id: string }>(
      "insert into app_public.feeds (kind, format, options, filters, is_global, every) values ($1, $2, $3, $4, $5, $6) returning id",
      [feed.kind, feed.format, feed.options ?? {}, feed.filters ?? {}, feed.is_global ?? false, feed.every ?? null],
    );
    return Number(rows[0].id);
  });
}

export async function requestRun(pool: pg.Pool, owner: Owner, feedId: number): Promise<number> {
  return asOwner(pool, owner, async (client) => {
    const { rows } = await client.query<{ number: number }>("select number from app_public.request_feed_run($1)", [feedId]);
    return rows[0].number;
  });
}

export interface RunRow {
  number: number;
  status: string;
  attempts: number;
  rows: string | null;
  files: { name: string; rows: number; bytes: number; sha256: string }[] | null;
  snapshot: string | null;
  since_snapshot: string | null;
  error_message: string | null;
}

export async function readRun(pool: pg.Pool, feedId: number, number: number): Promise<RunRow> {
  const { rows } = await pool.query<RunRow>(
    "select number, status, attempts, rows, files, snapshot::text, since_snapshot::text, error_message from app_public.feed_runs where feed_id = $1 and number = $2",
    [feedId, number],
  );
  return rows[0];
}

export const quietLog: Log = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** The task's context: the test database's owner pool, and the storage (EXPORT_DIR `dir`, or one that fails). */
export function taskContext(pool: pg.Pool, dir: string, storage: ExportStorage = localStorage(dir)): TaskContext {
  return {
    pool,
    replicas: undefined,
    log: quietLog,
    metrics: createMetrics(),
    exportDir: dir,
    storage,
    exportRetentionDays: 7,
    runKeyRetentionDays: 7,
    exportStatementTimeoutSeconds: 60,
    exportFailedForGood: () => {},
  };
}

/** Calls the feed_run task as graphile-worker would for the job's `attempt`. */
export function runTask(context: TaskContext, feedId: number, run: number, attempt = 1): Promise<void> {
  const helpers = { job: { id: `test-${feedId}-${run}-${attempt}`, attempts: attempt, max_attempts: 5 }, abortSignal: new AbortController().signal };
  return feedRunTask({ feedId, run }, helpers as unknown as JobHelpers, context);
}

/** Requests a run and writes it at once; returns its number. */
export async function runFeed(pool: pg.Pool, owner: Owner, feedId: number, dir: string): Promise<number> {
  const number = await requestRun(pool, owner, feedId);
  await runTask(taskContext(pool, dir), feedId, number);
  const row = await readRun(pool, feedId, number);
  if (row.status !== "succeeded") throw new Error(`run ${number} of feed ${feedId} is ${row.status}: ${row.error_message}`);
  return number;
}

/** A local storage whose `save` of a file matching `failOn` fails, after `afterBytes` bytes of it went through. */
export function failingStorage(dir: string, failOn: RegExp, afterBytes = 0): ExportStorage & { failures: number } {
  const inner = localStorage(dir);
  const storage = {
    ...inner,
    failures: 0,
    async save(fileName: string, stages: Parameters<ExportStorage["save"]>[1], signal: AbortSignal) {
      if (!failOn.test(fileName)) return inner.save(fileName, stages, signal);
      storage.failures++;
      let seen = 0;
      const { Transform } = await import("node:stream");
      const cut = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          seen += chunk.length;
          if (seen > afterBytes) return callback(new Error(`simulated crash writing ${fileName}`));
          callback(null, chunk);
        },
        flush(callback) {
          callback(new Error(`simulated crash at the end of ${fileName}`));
        },
      });
      return inner.save(fileName, [...stages, cut] as Parameters<ExportStorage["save"]>[1], signal);
    },
  };
  return storage;
}

export async function manifestOf(dir: string, feedId: number, run: number): Promise<FeedManifest> {
  return JSON.parse(await readFile(path.join(dir, "feeds", String(feedId), String(run), "manifest.json"), "utf8"));
}

/** DuckDB's reader of a file of the format. */
function reader(format: string, file: string): string {
  const quoted = `'${file.replaceAll("'", "''")}'`;
  if (format === "parquet") return `read_parquet(${quoted})`;
  if (format === "jsonl") return `read_json(${quoted}, format = 'newline_delimited')`;
  return `read_csv(${quoted}, header = true, all_varchar = true)`;
}

/**
 * A warehouse: applies runs 1..N of the feed (from their manifests) in order,
 * upserting each data file's rows by `key` and deleting the deleted file's
 * keys, and returns the resulting rows sorted by key, as JSON-friendly objects.
 */
export async function warehouse(dir: string, feedId: number, runs: number, key: string): Promise<Record<string, unknown>[]> {
  const duck = await DuckDBInstance.create(":memory:");
  const connection = await duck.connect();
  try {
    // The table takes its columns from the first file with rows (DuckDB cannot tell an empty JSONL file's).
    let created = false;
    for (let run = 1; run <= runs; run++) {
      const manifest = await manifestOf(dir, feedId, run);
      const folder = path.join(dir, "feeds", String(feedId), String(run));
      const [data, deleted] = [manifest.files[0], manifest.files.find((file) => file.name.startsWith("deleted."))];
      const dataFile = reader(manifest.format, path.join(folder, data.name));
      if (!created && data.rows > 0) {
        await connection.run(`create table t as select * from ${dataFile} limit 0`);
        created = true;
      }
      if (created && deleted && deleted.rows > 0) {
        await connection.run(`delete from t where ${key}::text in (select ${key}::text from ${reader(manifest.format, path.join(folder, deleted.name))})`);
      }
      if (data.rows > 0) {
        await connection.run(`delete from t where ${key}::text in (select ${key}::text from ${dataFile})`);
        await connection.run(`insert into t select * from ${dataFile}`);
      }
    }
    if (!created) return [];
    return await rowsOf(connection, `select * from t order by ${key}`);
  } finally {
    connection.closeSync();
  }
}

export async function rowsOf(connection: DuckDBConnection, sql: string): Promise<Record<string, unknown>[]> {
  const reader = await connection.runAndReadAll(sql);
  return reader.getRowObjectsJson() as Record<string, unknown>[];
}

/** The column types DuckDB reads from a Parquet file. */
export async function parquetTypes(file: string): Promise<Record<string, string>> {
  const duck = await DuckDBInstance.create(":memory:");
  const connection = await duck.connect();
  try {
    const rows = await rowsOf(connection, `describe select * from read_parquet('${file}')`);
    return Object.fromEntries(rows.map((row) => [row.column_name as string, row.column_type as string]));
  } finally {
    connection.closeSync();
  }
}
