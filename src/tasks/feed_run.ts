// The "feed_run" job: writes run N of a feed to the export storage under
// feeds/<feed>/<N>/, one file of rows to upsert and one of keys to delete
// (app_hidden.feed_parts), then manifest.json, last, so a consumer that sees a
// manifest knows the run is complete. The run's rows are those visible in its
// snapshot whose writer was not visible in run N-1's, read as the feed's owner
// (RLS) in one REPEATABLE READ transaction.
//
// Exactly once, whatever fails: the snapshot is recorded before anything is
// written, and the run is recorded as written only with the snapshot its
// manifest names. A retry finds either that manifest (written, then a crash
// before it was recorded) and records it as it is, or no manifest: then no
// consumer has seen the run, and it writes the whole run again from a new
// snapshot over whatever files the failed attempt left. The next run starts
// from the recorded snapshot, so nothing is skipped or repeated. Two jobs of a
// feed (a retry of a worker presumed dead, say) never write at once: each
// holds the feed's advisory lock on its reading connection, and checks that
// connection is alive before it writes the manifest.
import type { JobHelpers } from "graphile-worker";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { formatFile, type FileFormat, type FormatOptions } from "../formats.ts";
import { LoggedError } from "../log.ts";
import type { TaskContext } from "../task-context.ts";
import { Meter } from "./export.ts";

/** The manifest's layout; bump when a file's columns or the manifest change meaning. */
export const FEED_SCHEMA_VERSION = 1;
// 'PFRN': the lock class of feed runs, apart from every other advisory lock.
const FEED_LOCK_CLASS = 1346785870;

interface StartedRun {
  kind: string;
  format: FileFormat;
  options: FormatOptions;
  filters: object;
  user_id: string;
  role: string;
  since_snapshot: string | null;
  snapshot: string | null;
}

export interface FeedFile {
  name: string;
  rows: number;
  bytes: number;
  sha256: string;
}

export interface FeedManifest {
  feed: number;
  run: number;
  kind: string;
  format: FileFormat;
  schema_version: number;
  snapshot: { since: string | null; until: string };
  files: FeedFile[];
}

interface WrittenManifest {
  manifest: FeedManifest;
  sha256: string;
}

export function feedRunPrefix(feedId: number | string, run: number | string): string {
  return `feeds/${feedId}/${run}/`;
}

function payloadOf(payload: unknown): { feedId: number; run: number } {
  const { feedId, run } = (payload ?? {}) as { feedId?: unknown; run?: unknown };
  const positive = (value: unknown) => typeof value === "number" && Number.isSafeInteger(value) && value > 0;
  if (!positive(feedId) || !positive(run) || Object.keys(payload as object).length !== 2) {
    throw new Error(`The feed_run job's payload must be {"feedId": <positive integer>, "run": <positive integer>}, not ${JSON.stringify(payload)}.`);
  }
  return { feedId: feedId as number, run: run as number };
}

export default async function feedRunTask(payload: unknown, helpers: JobHelpers, context: TaskContext): Promise<void> {
  const { feedId, run } = payloadOf(payload);
  const attempt = helpers.job.attempts;
  const { pool, log } = context;
  const fields = { feedId, run, attempt, jobId: helpers.job.id };
  const client = await pool.connect();
  let reusable = false;
  try {
    await client.query("select pg_advisory_lock($1, $2)", [FEED_LOCK_CLASS, feedId % 2 ** 31]);
    const {
      rows: [started],
    } = await pool.query<StartedRun>("select * from app_private.feed_run_started($1, $2, $3)", [feedId, run, attempt]);
    if (!started) {
      log.info(fields, "feed run skipped: it has been written already, was refused (see its error), or its feed is gone");
      reusable = true;
      return;
    }
    log.info({ ...fields, kind: started.kind, format: started.format }, "feed run started");
    const begun = performance.now();
    try {
      const { manifest, sha256 } = (await publishedEarlier(context, feedId, run, started)) ?? (await writeRun(context, client, feedId, run, started, helpers));
      reusable = true;
      const rows = manifest.files.reduce((sum, file) => sum + file.rows, 0);
      const manifestKey = context.storage.objectKeyOf(`${feedRunPrefix(feedId, run)}manifest.json`);
      const { rows: [{ recorded }] } = await pool.query<{ recorded: boolean }>(
        "select app_private.feed_run_succeeded($1, $2, $3, $4, $5, $6, $7, $8) as recorded",
        [feedId, run, attempt, manifest.snapshot.until, rows, JSON.stringify(manifest.files), manifestKey, sha256],
      );
      const outcome = { ...fields, rows, durationMs: Math.round(performance.now() - begun) };
      if (!recorded) {
        log.warn(outcome, "feed run written, but the run was no longer this attempt's (its feed deleted, or a newer attempt took over)");
      } else {
        log.info(outcome, "feed run succeeded");
        const labels = { kind: started.kind, format: started.format };
        context.metrics.feedRunsSucceeded.inc(labels);
        context.metrics.feedRunDuration.observe(labels, (performance.now() - begun) / 1000);
        context.metrics.feedRunRows.observe(labels, rows);
      }
    } catch (error) {
      const final = attempt >= helpers.job.max_attempts;
      const message = final
        ? `Run ${run} failed ${attempt} times; it is queued again with the feed's next run.`
        : `Attempt ${attempt} of ${helpers.job.max_attempts} failed; the run will be retried shortly.`;
      await pool
        .query("select app_private.feed_run_failed($1, $2, $3, $4, $5)", [feedId, run, attempt, messageOf(error) ?? message, final])
        .catch((recordError) => log.warn({ ...fields, error: recordError.message }, "could not record the feed run's failure"));
      context.metrics.feedRunAttemptsFailed.inc({ kind: started.kind, format: started.format });
      log[final ? "error" : "warn"]({ ...fields, error: (error as Error).message }, final ? "feed run failed for good" : "feed run attempt failed; it will be retried");
      throw new LoggedError(error);
    }
  } finally {
    if (reusable) await client.query("select pg_advisory_unlock($1, $2)", [FEED_LOCK_CLASS, feedId % 2 ** 31]).catch(() => (reusable = false));
    // A connection left mid-COPY, or holding the lock, is closed instead of pooled.
    client.release(!reusable);
  }
}

/** The schema's own errors explain themselves; others may name internals. */
function messageOf(error: unknown): string | undefined {
  const { code, message } = error as { code?: unknown; message?: string };
  return typeof code === "string" && /^P[RF]/.test(code) ? message : undefined;
}

/**
 * The manifest of an earlier attempt that wrote the whole run and then failed
 * before recording it: the run is what that manifest says (consumers may have
 * read it), so it is recorded as it is. It counts only with the snapshot the
 * database recorded for the run, and the same lower bound.
 */
async function publishedEarlier(context: TaskContext, feedId: number, run: number, started: StartedRun): Promise<WrittenManifest | undefined> {
  if (started.snapshot === null) return undefined;
  const text = await context.storage.read(`${feedRunPrefix(feedId, run)}manifest.json`);
  if (!text) return undefined;
  const manifest = JSON.parse(text.toString("utf8")) as FeedManifest;
  const same = manifest.feed === feedId && manifest.run === run && manifest.snapshot.until === started.snapshot && manifest.snapshot.since === started.since_snapshot;
  if (!same) return undefined;
  context.log.info({ feedId, run }, "feed run found written by an earlier attempt; recording it");
  return { manifest, sha256: createHash("sha256").update(text).digest("hex") };
}

async function writeRun(
  context: TaskContext,
  client: import("pg").PoolClient,
  feedId: number,
  run: number,
  started: StartedRun,
  helpers: JobHelpers,
): Promise<WrittenManifest> {
  const attempt = helpers.job.attempts;
  await client.query("begin isolation level repeatable read read only");
  try {
    await client.query(
      `select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true), set_config('application_name', $3, true),
              set_config('statement_timeout', $4, true), set_config('TimeZone', 'UTC', true),
              set_config('DateStyle', 'ISO', true)`,
      [started.role, started.user_id, `prompter-worker feed=${feedId} run=${run} job=${helpers.job.id}`, `${context.exportStatementTimeoutSeconds}s`],
    );
    // The first query takes the transaction's snapshot: this one.
    const {
      rows: [{ snapshot }],
    } = await client.query<{ snapshot: string }>("select pg_current_snapshot()::text as snapshot");
    const { rows: [{ recorded }] } = await context.pool.query<{ recorded: boolean }>(
      "select app_private.feed_run_snapshot($1, $2, $3, $4) as recorded",
      [feedId, run, attempt, snapshot],
    );
    if (!recorded) throw new Error(`run ${run} of feed ${feedId} is no longer this attempt's`);
    const { rows: parts } = await client.query<{ file_name: string; query: string }>(
      "select file_name, query from app_hidden.feed_parts($1, $2, $3, $4, $5)",
      [started.kind, started.format !== "csv", started.options.excel ?? false, started.since_snapshot, started.filters],
    );
    const files: FeedFile[] = [];
    for (const part of parts) {
      const file = formatFile(client, part.query, started.format, started.options);
      const meter = new Meter();
      const name = `${part.file_name}.${file.extension}`;
      await context.storage.save(feedRunPrefix(feedId, run) + name, [...file.stages, meter], helpers.abortSignal);
      files.push({ name, rows: file.rows(), bytes: meter.bytes, sha256: meter.digest() });
    }
    const manifest: FeedManifest = {
      feed: feedId,
      run,
      kind: started.kind,
      format: started.format,
      schema_version: FEED_SCHEMA_VERSION,
      snapshot: { since: started.since_snapshot, until: snapshot },
      files,
    };
    // Still holding the feed's lock: no other attempt can have written since.
    await client.query("select 1");
    const text = Buffer.from(JSON.stringify(manifest, null, 2) + "\n");
    await context.storage.save(`${feedRunPrefix(feedId, run)}manifest.json`, [Readable.from([text])], helpers.abortSignal);
    await client.query("commit");
    return { manifest, sha256: createHash("sha256").update(text).digest("hex") };
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  }
}
