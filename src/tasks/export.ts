// The "export" job, queued with each row of app_public.exports: writes the export
// to the export storage (EXPORT_DIR or S3, src/storage/) from one REPEATABLE READ
// snapshot read as the requester, so RLS decides what it holds. What each kind
// contains, filters applied, is defined in SQL (app_hidden.export_parts); this
// streams it in its format (CSV here, JSONL and Parquet by the feeds' writers,
// src/formats.ts): rows -> (gzip) -> sha256 and byte count -> storage, which
// makes the file visible only once it is complete. Memory does not grow with
// the number of rows.
import type { JobHelpers } from "graphile-worker";
import { createHash, randomBytes } from "node:crypto";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { createGzip } from "node:zlib";
import type pg from "pg";
import { to as copyTo, type CopyToStreamQuery } from "pg-copy-streams";
import yazl from "yazl";
import { isReplicaFault } from "../db/replicas.ts";
import { formatFile, type FileFormat } from "../formats.ts";
import { LoggedError } from "../log.ts";
import type { TaskContext } from "../task-context.ts";

interface ExportJob {
  id: string;
  user_id: string;
  kind: string;
  format: FileFormat;
  // As the format takes them: csv gzip and excel, jsonl gzip, parquet none.
  options: { gzip?: boolean; excel?: boolean };
  filters: object;
  requested_role: string;
  request_id: string | null;
  status: string;
  error_code: string | null;
  error_message: string | null;
}

interface WrittenExport {
  fileName: string;
  objectKey: string | null;
  rows: number;
  bytes: number;
  sha256: string;
  dataVersion: string;
}

const PROGRESS_INTERVAL_MS = 1000;
const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const QUOTE = 0x22;
const NEWLINE = 0x0a;
// A fixed entry time in local DOS format (no UTC extra field), so zipping
// unchanged data gives the same bytes on any machine.
const ZIP_ENTRY_TIME = new Date(1980, 0, 1);

export default async function exportTask(payload: unknown, helpers: JobHelpers, context: TaskContext): Promise<void> {
  const exportId = exportIdOf(payload);
  const attempt = helpers.job.attempts;
  const { pool, log, metrics, storage } = context;
  const {
    rows: [job],
  } = await pool.query<ExportJob>(
    "select id, user_id, kind, format, options, filters, requested_role, request_id, status, error_code, error_message from app_private.export_started($1, $2)",
    [exportId, attempt],
  );
  if (job.id === null) {
    log.info({ exportId, jobId: helpers.job.id }, "export skipped: it was deleted or has finished already");
    return;
  }
  const fields = { exportId, userId: job.user_id, kind: job.kind, attempt, requestId: job.request_id, jobId: helpers.job.id };
  if (job.status === "failed") {
    // Its requester lost the rights it was asked with: failed for good, nothing to retry.
    log.warn({ ...fields, code: job.error_code, error: job.error_message }, "export refused: its requester no longer has the rights it was asked with");
    metrics.exportsFailed.inc({ kind: job.kind });
    return;
  }
  log.info(fields, "export started");
  const started = performance.now();
  try {
    // Files of earlier attempts: a temporary file of a worker that was killed, or
    // a file completed just before a crash. The export had not succeeded when
    // this attempt started, so none of them is the export's file.
    await storage.removeEarlierAttempts(job.kind, job.id, attempt);
    const written = await writeExport(context, job, helpers);
    const recorded = await pool
      .query<{ recorded: boolean }>(
        "select app_private.export_succeeded($1, $2, $3, $4, $5, $6, $7, $8) as recorded",
        [exportId, attempt, written.fileName, written.objectKey, written.rows, written.bytes, written.sha256, written.dataVersion],
      )
      .then((result) => result.rows[0].recorded)
      .catch(async (error) => {
        await storage.remove(written).catch(() => {});
        throw error;
      });
    const seconds = (performance.now() - started) / 1000;
    const outcome = { ...fields, rows: written.rows, bytes: written.bytes, durationMs: Math.round(seconds * 1000) };
    if (recorded) {
      log.info(outcome, "export succeeded");
      metrics.exportsSucceeded.inc({ kind: job.kind });
      metrics.exportDuration.observe({ kind: job.kind }, seconds);
      metrics.exportRows.observe({ kind: job.kind }, written.rows);
      metrics.exportBytes.observe({ kind: job.kind }, written.bytes);
    } else {
      // This worker was presumed dead and its job was run again; that attempt owns the export.
      await storage.remove(written);
      log.warn(outcome, "export finished after a newer attempt took over; discarded its file");
    }
  } catch (error) {
    const final = attempt >= helpers.job.max_attempts;
    const fileError = storage.kind === "local" ? exportDirError(error) : undefined;
    if (fileError) metrics.exportDirFailures.inc({ code: fileError });
    await pool
      .query("select app_private.export_failed($1, $2, $3, $4)", [
        exportId,
        attempt,
        messageForUser(error, exportId, attempt, helpers.job.max_attempts),
        final,
      ])
      .catch((recordError) => log.warn({ ...fields, error: recordError.message }, "could not record the export's failure"));
    const failure = {
      ...fields,
      maxAttempts: helpers.job.max_attempts,
      durationMs: Math.round(performance.now() - started),
      error: helpers.abortSignal.aborted
        ? "aborted: the worker was stopped and SHUTDOWN_GRACE ran out before the export finished"
        : (error as Error).message,
      ...(fileError ? { exportDir: context.exportDir, exportDirError: fileError } : {}),
    };
    if (final) {
      context.exportFailedForGood(failure);
    } else {
      log.warn(failure, "export attempt failed; it will be retried");
      metrics.exportAttemptsFailed.inc({ kind: job.kind });
    }
    throw new LoggedError(error);
  }
}

function exportIdOf(payload: unknown): number {
  const exportId = (payload as { exportId?: unknown } | null)?.exportId;
  if (typeof exportId !== "number" || !Number.isSafeInteger(exportId) || exportId <= 0) {
    throw new Error(`The export job's payload must be {"exportId": <positive integer>}, not ${JSON.stringify(payload)}.`);
  }
  return exportId;
}

// What a file system says when EXPORT_DIR cannot take the file: full, over
// quota, read-only, not writable, gone, or failing.
const EXPORT_DIR_ERRORS: Record<string, string> = {
  ENOSPC: "the server's export disk is full",
  EDQUOT: "the server's export disk quota is used up",
  EROFS: "the server's export directory is read-only",
  EACCES: "the server may not write to its export directory",
  EPERM: "the server may not write to its export directory",
  ENOENT: "the server's export directory is missing",
  ENOTDIR: "the server's export directory is missing",
  EIO: "the server's export disk failed",
};
/** The error codes of EXPORT_DIR counted by prompter_export_dir_failures_total. */
export const EXPORT_DIR_ERROR_CODES = Object.keys(EXPORT_DIR_ERRORS);

/** The error code when writing to EXPORT_DIR failed (say ENOSPC), for the metric and the user's message. */
function exportDirError(error: unknown): string | undefined {
  const { code, syscall } = error as { code?: unknown; syscall?: unknown };
  return typeof code === "string" && typeof syscall === "string" && code in EXPORT_DIR_ERRORS ? code : undefined;
}

/**
 * The schema's own errors explain themselves, and so does a full or read-only
 * disk; anything else may name files or internals, so users get a summary.
 */
function messageForUser(error: unknown, exportId: number, attempt: number, maxAttempts: number): string {
  const { code, message } = error as { code?: unknown; message?: string };
  if (typeof code === "string" && code.startsWith("PR") && message) return message;
  const fileError = exportDirError(error);
  const reason = fileError ? ` (${EXPORT_DIR_ERRORS[fileError]})` : "";
  return attempt >= maxAttempts
    ? `The export failed ${attempt} times${reason}; try again later, or ask your operator about export ${exportId}.`
    : `Attempt ${attempt} of ${maxAttempts} failed${reason}; the export will be retried shortly.`;
}

/**
 * Reads the snapshot on a read replica when there are some: on one that has
 * replayed the primary's WAL up to now, which is past the request's commit, so
 * the file holds all its requester had committed. A replica that fails mid-way
 * (down, or the COPY cancelled for a recovery conflict) hands the export to the
 * next, and the primary is the last resort: a replica's fault costs no export.
 */
async function writeExport(context: TaskContext, job: ExportJob, helpers: JobHelpers): Promise<WrittenExport> {
  const { replicas } = context;
  if (replicas) {
    const {
      rows: [{ lsn }],
    } = await context.pool.query<{ lsn: string }>("select pg_current_wal_lsn()::text as lsn");
    const purpose = `export ${job.id}`;
    for (let tries = 0; tries < replicas.size; tries++) {
      const connection = await replicas.caughtUp(lsn, purpose);
      if (!connection) break;
      try {
        return await writeExportFrom(connection.client, context, job, helpers);
      } catch (error) {
        if (helpers.abortSignal.aborted || !isReplicaFault(error)) throw error;
        replicas.fellBack(connection.replica, "failed", purpose, error);
      }
    }
  }
  return writeExportFrom(await context.pool.connect(), context, job, helpers);
}

async function writeExportFrom(client: pg.PoolClient, context: TaskContext, job: ExportJob, helpers: JobHelpers): Promise<WrittenExport> {
  const attempt = helpers.job.attempts;
  // The snapshot connection's application_name, so pg_stat_activity tells whose export it runs.
  const connectionName = `prompter-worker export=${job.id} job=${helpers.job.id}`;
  // A failed COPY or file write can leave the connection mid-protocol: destroy it
  // instead of returning it to the pool (release(true)) unless all went well.
  let reusable = false;
  // Each file's rows so far, and once read to the end, all of them.
  const files: { rowsSoFar(): number; rows(): number }[] = [];
  const progress = reportProgress(context, job.id, attempt, () => files.reduce((sum, file) => sum + file.rowsSoFar(), 0));
  try {
    await client.query("begin isolation level repeatable read read only");
    // TimeZone UTC and DateStyle ISO: timestamps as JSONL and Parquet read them
    // (src/formats.ts), and filters' timestamps without a zone.
    await client.query(
      `select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true), set_config('application_name', $3, true),
              set_config('statement_timeout', $4, true), set_config('TimeZone', 'UTC', true),
              set_config('DateStyle', 'ISO', true)`,
      [job.requested_role, job.user_id, connectionName, `${context.exportStatementTimeoutSeconds}s`],
    );
    const {
      rows: [{ data_version: dataVersion }],
    } = await client.query<{ data_version: string }>("select app_hidden.current_data_version() as data_version");
    const { rows: parts } = await client.query<{ file_name: string; query: string }>(
      "select file_name, query from app_hidden.export_parts($1, $2, $3, $4)",
      [job.kind, job.options.excel ?? false, job.format !== "csv", job.filters],
    );
    // A file's stages (and its name's extension); gzip only where the SQL allowed it (never inside the zip).
    const startFile = (query: string, gzip: boolean): { stages: [Readable, ...Transform[]]; extension: string } => {
      if (job.format === "csv") {
        const file = new CsvFile(client, query, job.options.excel ?? false);
        files.push({ rowsSoFar: () => file.rowsSeen, rows: () => file.copy!.rowCount });
        return gzip ? { stages: [file.stream, createGzip()], extension: "csv.gz" } : { stages: [file.stream], extension: "csv" };
      }
      const file = formatFile(client, query, job.format, { gzip });
      files.push({ rowsSoFar: file.rows, rows: file.rows });
      return file;
    };
    let stages: [Readable, ...Transform[]];
    let extension: string;
    if (job.kind === "all") {
      const entryExtension = job.format === "csv" ? "csv" : job.format;
      stages = [zipOf(parts.map((part) => ({ name: `${part.file_name}.${entryExtension}`, open: () => startFile(part.query, false).stages[0] })))];
      extension = "zip";
    } else {
      ({ stages, extension } = startFile(parts[0].query, job.options.gzip ?? false));
    }
    const fileName = `${job.kind}-${job.id}-${attempt}-${randomBytes(4).toString("hex")}.${extension}`;
    const meter = new Meter();
    const objectKey = await context.storage.save(fileName, [...stages, meter], helpers.abortSignal);
    await client.query("commit");
    reusable = true;
    const rows = files.reduce((sum, file) => sum + file.rows(), 0);
    return { fileName, objectKey, rows, bytes: meter.bytes, sha256: meter.digest(), dataVersion };
  } finally {
    await progress.stop();
    client.release(!reusable);
  }
}

/** One COPY of a query as CSV with a header, counting records as they pass (for progress). */
class CsvFile {
  /** Set once the file is first read: COPY starts then, so nothing is left running if the file is never read. */
  copy: CopyToStreamQuery | undefined;
  readonly stream: Readable;
  private records = 0;
  private quoted = false;

  constructor(client: pg.PoolClient, query: string, excel: boolean) {
    this.stream = new Readable({
      read: () => {
        if (this.copy) return void this.copy.resume();
        if (excel) this.stream.push(UTF8_BOM);
        const copy = client.query(copyTo(`COPY (${query}) TO STDOUT WITH (FORMAT csv, HEADER)`));
        copy.on("data", (chunk: Buffer) => {
          this.count(chunk);
          if (!this.stream.push(chunk)) copy.pause();
        });
        copy.once("end", () => this.stream.push(null));
        // on, not once: a COPY cut short by a failed write fails again when its
        // connection is then closed, and an unheard "error" would crash the worker.
        copy.on("error", (error) => this.stream.destroy(error));
        this.copy = copy;
      },
      // A COPY that sends nothing yet (its query waits for a lock, or sorts) must
      // not hold up an abort; its connection is then discarded (release(true)).
      destroy: (error, callback) => {
        this.copy?.destroy();
        callback(error);
      },
    });
  }

  /** Data rows so far: records minus the header. Exact, since quoted newlines are not counted. */
  get rowsSeen(): number {
    return Math.max(this.records - 1, 0);
  }

  // A record ends at a newline outside quotes. Quotes inside a quoted field are
  // doubled, so toggling on every quote tracks whether we are inside one.
  // Each quote and newline is found once, so this is linear in the chunk.
  private count(chunk: Buffer) {
    let quote = chunk.indexOf(QUOTE);
    let newline = chunk.indexOf(NEWLINE);
    while (newline !== -1) {
      if (quote !== -1 && quote < newline) {
        this.quoted = !this.quoted;
        quote = chunk.indexOf(QUOTE, quote + 1);
      } else {
        if (!this.quoted) this.records++;
        newline = chunk.indexOf(NEWLINE, newline + 1);
      }
    }
    for (; quote !== -1; quote = chunk.indexOf(QUOTE, quote + 1)) this.quoted = !this.quoted;
  }
}

/**
 * A zip of the entries, each opened only when the zip reaches it: the COPYs
 * share one connection and one snapshot, so they must run one after another.
 */
function zipOf(entries: { name: string; open: () => Readable }[]): Readable {
  const zip = new yazl.ZipFile();
  const output = zip.outputStream as Readable;
  // yazl reports its own errors on the ZipFile and none of its entries' errors.
  zip.on("error", (error: Error) => output.destroy(error));
  for (const entry of entries) {
    zip.addReadStreamLazy(entry.name, { mtime: ZIP_ENTRY_TIME, forceDosTimestamp: true }, (callback) => {
      const stream = entry.open();
      stream.on("error", (error) => output.destroy(error));
      callback(null, stream);
    });
  }
  zip.end();
  return output;
}

/** Counts and hashes the bytes passing through (feed runs use it too). */
export class Meter extends Transform {
  bytes = 0;
  private readonly hash = createHash("sha256");

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    callback(null, chunk);
  }

  digest(): string {
    return this.hash.digest("hex");
  }
}

/** Records the rows written so far about every second, from the pool (the export's own connection is busy). */
function reportProgress(context: TaskContext, exportId: string, attempt: number, rowsWritten: () => number) {
  let reported = 0;
  let inFlight: Promise<void> | undefined;
  const timer = setInterval(() => {
    const rows = rowsWritten();
    if (inFlight || rows === reported) return;
    reported = rows;
    inFlight = context.pool
      .query("select app_private.export_progress($1, $2, $3)", [exportId, attempt, rows])
      .then(
        () => {},
        (error) => context.log.warn({ exportId, error: error.message }, "could not record export progress"),
      )
      .finally(() => {
        inFlight = undefined;
      });
  }, PROGRESS_INTERVAL_MS);
  return {
    async stop() {
      clearInterval(timer);
      await inFlight;
    },
  };
}
