// `npx prompter export <kind> --username U [--format csv|jsonl|parquet] [--gzip] [--excel]
//  [--agents a,b] [--created-after T] [--created-before T] [--out FILE] [--wait]`:
// queues an export as that user (their role and claims, so the SQL rules and
// RLS apply as for any other request), and with --wait or --out waits for a
// worker to write it. SQL checks the format, options and filters.
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { loadConfig } from "../config.ts";
import { filtersOf, FILTER_FLAGS, parseCommandArgs, UsageError } from "./args.ts";
import { listenToExports } from "../server/export-events.ts";
import { findUser, withDatabase } from "./connect.ts";
import { createLogger } from "../log.ts";
import { createStorage, ExportFileGone } from "../storage/index.ts";

const USAGE =
  "usage: prompter export <kind> --username U [--format csv|jsonl|parquet] [--gzip] [--excel] [--agents a,b] [--created-after T] [--created-before T] [--out FILE] [--wait]";

interface ExportRow {
  id: string;
  status: "queued" | "running" | "succeeded" | "failed";
  rows: string | null;
  bytes: string | null;
  sha256: string | null;
  file_name: string | null;
  object_key: string | null;
  progress_rows: string;
  attempts: number;
  error_message: string | null;
}

export default async function exportCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(args, {
    username: { type: "string" },
    out: { type: "string" },
    wait: { type: "boolean", default: false },
    gzip: { type: "boolean", default: false },
    excel: { type: "boolean", default: false },
    format: { type: "string", default: "csv" },
    ...FILTER_FLAGS,
  });
  const [kind] = positionals;
  if (!kind || positionals.length > 1 || !values.username) throw new UsageError(USAGE);
  const config = loadConfig();
  // Before anything is queued: a missing directory is created, one that cannot be is a usage error.
  if (values.out) {
    await mkdir(path.dirname(path.resolve(values.out)), { recursive: true }).catch((error: NodeJS.ErrnoException) => {
      throw new UsageError(`Cannot create the directory of --out ${values.out}: ${error.message}`);
    });
  }
  await withDatabase(async (client) => {
    // Only the flags given: SQL refuses an option the format does not take.
    const options = { ...(values.gzip ? { gzip: true } : {}), ...(values.excel ? { excel: true } : {}) };
    const id = await requestExportFor(client, values.username!, kind, options, values.format, filtersOf(values));
    process.stdout.write(`Queued export ${id} (${kind}) as ${values.format} for ${values.username}.\n`);
    if (!values.wait && !values.out) return;
    process.stderr.write("Waiting for a worker to run it (npx prompter worker, or npx prompter start)...\n");
    const done = await waitForExport(client, id, showProgress);
    if (done.status === "failed") {
      process.stderr.write(`Export ${id} failed after ${done.attempts} attempt(s): ${done.error_message}\n`);
      process.exitCode = 1;
      return;
    }
    const storage = createStorage(config, createLogger(config));
    const stored = { fileName: done.file_name!, objectKey: done.object_key };
    process.stdout.write(
      `Export ${id} succeeded: ${done.rows} rows, ${done.bytes} bytes, sha256 ${done.sha256}\n  ${storage.describe(stored)}\n`,
    );
    if (values.out) {
      const file = await storage.open(stored).catch((error) => {
        if (!(error instanceof ExportFileGone)) throw error;
        throw new UsageError(
          storage.kind === "local"
            ? `${storage.describe(stored)} is missing: the worker writes to its own EXPORT_DIR, so share it with this machine (or use EXPORT_STORAGE=s3).`
            : error.message,
        );
      });
      try {
        await pipeline(file.stream, createWriteStream(values.out)).catch((error: NodeJS.ErrnoException) => {
          // Only the output file's own errors are the user's to fix.
          if (error.path !== values.out) throw error;
          throw new UsageError(`Cannot write --out ${values.out}: ${error.message}`);
        });
      } finally {
        await file.close();
      }
      process.stdout.write(`Copied to ${values.out}\n`);
    }
  });
}

async function requestExportFor(client: pg.Client, username: string, kind: string, options: object, format: string, filters: object): Promise<string> {
  const user = await findUser(client, username);
  return requestExportAs(client, { role: user.role, userId: user.id }, kind, options, format, filters);
}

/** Requests an export in a transaction of its own, as the given role and user. */
export async function requestExportAs(
  client: pg.ClientBase,
  actor: { role: string; userId: string | number },
  kind: string,
  options: object,
  format = "csv",
  filters: object = {},
): Promise<string> {
  await client.query("begin");
  try {
    await client.query("select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true)", [
      actor.role,
      String(actor.userId),
    ]);
    const { rows } = await client.query<{ id: string }>("select id from app_public.request_export($1, $2, $3, $4)", [
      kind,
      JSON.stringify(options),
      format,
      JSON.stringify(filters),
    ]);
    await client.query("commit");
    return rows[0].id;
  } catch (error) {
    await client.query("rollback");
    throw error;
  }
}

/** Re-reads the export whenever the worker notifies a change to it, until it has finished. */
async function waitForExport(client: pg.Client, id: string, onChange: (row: ExportRow) => void): Promise<ExportRow> {
  let wake = () => {};
  let channel: string | undefined;
  client.on("notification", (message) => {
    if (message.channel === channel && message.payload === id) wake();
  });
  channel = await listenToExports(client);
  for (;;) {
    // Armed before reading, so a change between the read and the wait is not missed.
    const changed = new Promise<void>((resolve) => (wake = resolve));
    const {
      rows: [row],
    } = await client.query<ExportRow>(
      "select id, status, rows, bytes, sha256, file_name, object_key, progress_rows, attempts, error_message from app_public.exports where id = $1",
      [id],
    );
    if (!row) throw new Error(`Export ${id} was deleted while waiting for it.`);
    onChange(row);
    if (row.status === "succeeded" || row.status === "failed") return row;
    await changed;
  }
}

/** One line rewritten in place on a terminal; nothing when stderr is a file or pipe. */
function showProgress(row: ExportRow): void {
  if (!process.stderr.isTTY) return;
  const rows = Number(row.progress_rows).toLocaleString("en");
  const retry = row.status === "queued" && row.error_message ? ` (retrying: ${row.error_message})` : "";
  const line = `Export ${row.id}: ${row.status}, ${rows} rows written${retry}`;
  process.stderr.write(`\r\x1b[2K${line}${row.status === "succeeded" || row.status === "failed" ? "\n" : ""}`);
}
