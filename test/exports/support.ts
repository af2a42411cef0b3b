// Helpers for the export tests: a worker against the test file's database with
// its own EXPORT_DIR, requesting exports as a user, waiting for them, and
// reading what they wrote (CSV, gzip, zip) back.
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { crc32, gunzipSync, inflateRawSync } from "node:zlib";
import type pg from "pg";
import { requestExportAs } from "../../src/commands/export.ts";
import { loadConfig } from "../../src/config.ts";
import type { Log } from "../../src/log.ts";
import { createMetrics } from "../../src/metrics.ts";
import { startWorker } from "../../src/worker.ts";
import type { Actor } from "../support/db.ts";
import { spawnPrompter, type PrompterProcess } from "../support/server.ts";

/** A user acting through the app: their role and id. */
export type SignedIn = Extract<Actor, { userId: unknown }> & { userId: string };

export interface ExportRow {
  id: string;
  user_id: string;
  kind: string;
  status: string;
  rows: string | null;
  bytes: string | null;
  sha256: string | null;
  file_name: string | null;
  object_key: string | null;
  attempts: number;
  error_message: string | null;
  progress_rows: string;
  data_version: string | null;
  stale: boolean | null;
}

export interface LogLine {
  level: "debug" | "info" | "warn" | "error";
  message: string;
  fields: Record<string, unknown>;
}

/**
 * Registers hooks that run a worker in this process against the test file's
 * database (register useTestDatabase first), writing to a temporary EXPORT_DIR
 * and logging into `lines`.
 */
export function useExportWorker(db: { url: string }, env: Record<string, string> = {}) {
  const context = {} as { dir: string; lines: LogLine[] };
  let worker: Awaited<ReturnType<typeof startTestWorker>> | undefined;
  beforeAll(async () => {
    context.dir = await mkdtemp(path.join(tmpdir(), "prompter-exports-"));
    worker = await startTestWorker(db.url, context.dir, env);
    context.lines = worker.lines;
  });
  afterAll(async () => {
    await worker?.stop();
    if (context.dir) await rm(context.dir, { recursive: true, force: true });
  });
  return context;
}

/** Registers hooks that give each test of the file an EXPORT_DIR of its own (`context.dir`), so it sees only its own files. */
export function useExportDirPerTest() {
  const context = {} as { dir: string };
  const dirs: string[] = [];
  beforeEach(async () => {
    context.dir = await mkdtemp(path.join(tmpdir(), "prompter-exports-"));
    dirs.push(context.dir);
  });
  afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));
  return context;
}

/** Runs `work` in a transaction on a connection of its own, rolled back when `work` ends (to hold locks meanwhile). */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    return await work(client);
  } finally {
    await client.query("rollback").catch(() => {});
    client.release();
  }
}

/** A worker in this process, logging into `lines`, with its metrics. */
export async function startTestWorker(databaseUrl: string, exportDir: string, env: Record<string, string> = {}) {
  const lines: LogLine[] = [];
  const record = (level: LogLine["level"]) => (fields: Record<string, unknown>, message: string) =>
    void lines.push({ level, message, fields });
  const log: Log = { debug: record("debug"), info: record("info"), warn: record("warn"), error: record("error") };
  const config = loadConfig({ DATABASE_URL: databaseUrl, EXPORT_DIR: exportDir, ...env });
  const metrics = createMetrics();
  const worker = await startWorker(config, databaseUrl, log, { metrics });
  return { ...worker, lines, metrics };
}

/** `npx prompter worker` as a child process; resolves once it takes jobs and handles SIGTERM. */
export function spawnWorker(databaseUrl: string, exportDir: string, env: Record<string, string> = {}): Promise<PrompterProcess> {
  return spawnPrompter({
    databaseUrl,
    args: ["worker"],
    env: { EXPORT_DIR: exportDir, WORKER_CONCURRENCY: "1", ...env },
    ready: (output) => output.includes("worker running"),
  });
}

/** Requests an export as the actor, committed (so the worker sees it); returns its id. */
export async function requestExport(pool: pg.Pool, actor: SignedIn, kind: string, options: object = {}, format?: string, filters?: object): Promise<string> {
  const client = await pool.connect();
  try {
    return await requestExportAs(client, actor, kind, options, format, filters);
  } finally {
    client.release();
  }
}

export async function readExport(pool: pg.Pool, id: string): Promise<ExportRow> {
  const { rows } = await pool.query<ExportRow>(
    "select e.*, app_public.exports_stale(e) as stale from app_public.exports e where e.id = $1",
    [id],
  );
  return rows[0];
}

/** Polls until `ready` holds; fails with `what` if it never does. */
export async function waitUntil<T>(read: () => Promise<T>, ready: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 25_000;
  for (;;) {
    const value = await read();
    if (ready(value)) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting until ${what}; last seen: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export function waitForExport(pool: pg.Pool, id: string): Promise<ExportRow> {
  return waitUntil(
    () => readExport(pool, id),
    (row) => row.status === "succeeded" || row.status === "failed",
    `export ${id} finished`,
  );
}

export async function exportFile(dir: string, row: ExportRow): Promise<Buffer> {
  if (row.status !== "succeeded" || !row.file_name) throw new Error(`export ${row.id} is ${row.status}: ${row.error_message}`);
  return readFile(path.join(dir, row.file_name));
}

export function parseCsv(data: Buffer | string): string[][] {
  return parse(data, { relax_column_count: false });
}

/** The entries of a zip file, in order, checked against their CRC. */
export function unzip(zip: Buffer): Map<string, Buffer> {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(end + 10);
  let offset = zip.readUInt32LE(end + 16);
  const entries = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(offset) !== 0x02014b50) throw new Error("not a zip central directory entry");
    const method = zip.readUInt16LE(offset + 10);
    const crc = zip.readUInt32LE(offset + 16);
    const compressedSize = zip.readUInt32LE(offset + 20);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const localHeader = zip.readUInt32LE(offset + 42);
    const name = zip.toString("utf8", offset + 46, offset + 46 + nameLength);
    const start = localHeader + 30 + zip.readUInt16LE(localHeader + 26) + zip.readUInt16LE(localHeader + 28);
    const stored = zip.subarray(start, start + compressedSize);
    const data = method === 8 ? inflateRawSync(stored) : stored;
    if (crc32(data) !== crc) throw new Error(`zip entry ${name} fails its CRC check`);
    entries.set(name, data);
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** What an export's file holds, parsed: each CSV (the zip's entries for "all") by file name. */
export async function exportContents(dir: string, row: ExportRow): Promise<Map<string, string[][]>> {
  return contentsOf(row, await exportFile(dir, row));
}

/** What the export's file `data` holds, parsed, as exportContents. */
export function contentsOf(row: ExportRow, data: Buffer): Map<string, string[][]> {
  if (row.kind === "all") return new Map([...unzip(data)].map(([name, entry]) => [name, parseCsv(entry)]));
  return new Map([[`${row.kind}.csv`, parseCsv(row.file_name!.endsWith(".gz") ? gunzipSync(data) : data)]]);
}
