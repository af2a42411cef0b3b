// `npx prompter feed add|list|run|pull ... --username U`: feeds as that user
// (their role and claims, so the SQL rules and RLS apply as for any request).
//   add <kind> --format csv|jsonl|parquet [--every 20m|1h|1d|1w] [--gzip] [--excel]
//       [--global] [--agents a,b] [--created-after T] [--created-before T]
//   list
//   run <feed> [--wait]          queue a run now; --wait waits for it
//   pull <feed> --dir DIR        copy every written run not yet in DIR to
//                                DIR/<run>/, checking each file's sha256, the
//                                manifest last (so DIR/<run>/manifest.json
//                                means the run is there, whole)
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { access, mkdir, rename, unlink } from "node:fs/promises";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { loadConfig } from "../config.ts";
import { createLogger } from "../log.ts";
import { listenToExports } from "../server/export-events.ts";
import { createStorage, type ExportStorage } from "../storage/index.ts";
import { filtersOf, FILTER_FLAGS, parseCommandArgs, positiveInteger, UsageError } from "./args.ts";
import { findUser, withDatabase } from "./connect.ts";

const USAGE = `usage: prompter feed add <kind> --username U --format csv|jsonl|parquet [--every 20m|1h|1d|1w] [--gzip] [--excel] [--global] [--agents a,b] [--created-after T] [--created-before T]
       prompter feed list --username U
       prompter feed run <feed> --username U [--wait]
       prompter feed pull <feed> --username U --dir DIR`;

interface RunRow {
  number: number;
  status: string;
  rows: string | null;
  files: { name: string; rows: number; bytes: number; sha256: string }[] | null;
  manifest_key: string | null;
  manifest_sha256: string | null;
  error_message: string | null;
}

/** Runs `work` as the user in a transaction of its own, committed. */
async function asUser<T>(client: pg.Client, user: { role: string; id: string }, work: () => Promise<T>): Promise<T> {
  await client.query("begin");
  try {
    await client.query("select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true)", [user.role, user.id]);
    const result = await work();
    await client.query("commit");
    return result;
  } catch (error) {
    await client.query("rollback");
    throw error;
  }
}

export default async function feedCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(args, {
    username: { type: "string" },
    format: { type: "string" },
    every: { type: "string" },
    gzip: { type: "boolean", default: false },
    excel: { type: "boolean", default: false },
    global: { type: "boolean", default: false },
    ...FILTER_FLAGS,
    wait: { type: "boolean", default: false },
    dir: { type: "string" },
  });
  const [action, target, ...rest] = positionals;
  if (!values.username || rest.length || !["add", "list", "run", "pull"].includes(action ?? "")) throw new UsageError(USAGE);
  if ((action === "list") !== (target === undefined)) throw new UsageError(USAGE);
  if (action === "pull" && !values.dir) throw new UsageError(`feed pull needs --dir.\n${USAGE}`);
  const feedId = action === "run" || action === "pull" ? positiveInteger(target, "The feed") : undefined;
  const config = loadConfig();
  await withDatabase(async (client) => {
    const found = await findUser(client, values.username!);
    const user = { role: found.role, id: found.id };
    if (action === "add") {
      const filters = filtersOf(values);
      const options = values.format === "parquet" ? {} : { gzip: values.gzip, ...(values.format === "csv" ? { excel: values.excel } : {}) };
      const { rows } = await asUser(client, user, () =>
        client.query<{ id: string }>("select id from app_public.create_feed($1, $2, $3, $4, $5, $6)", [
          target, values.format ?? null, values.every ?? null, JSON.stringify(filters), JSON.stringify(options), values.global,
        ]));
      process.stdout.write(`Created feed ${rows[0].id} (${target}, ${values.format}${values.every ? `, every ${values.every}` : ", on request"}).\n`);
    } else if (action === "list") {
      const { rows } = await asUser(client, user, () =>
        client.query(
          `select f.id, f.kind, f.format, f.every::text, f.paused, f.next_run_at, r.number, r.status, r.rows
             from app_public.feeds f
             left join lateral (select * from app_public.feed_runs r where r.feed_id = f.id order by r.number desc limit 1) r on true
            order by f.id`,
        ));
      for (const row of rows) {
        const last = row.number ? `run ${row.number} ${row.status}${row.rows === null ? "" : ` (${row.rows} rows)`}` : "no runs yet";
        const next = row.paused ? "paused" : row.next_run_at ? `next ${row.next_run_at.toISOString()}` : "on request";
        process.stdout.write(`${row.id}\t${row.kind}\t${row.format}\t${row.every ?? "-"}\t${next}\t${last}\n`);
      }
    } else if (action === "run") {
      const { rows: [run] } = await asUser(client, user, () =>
        client.query<{ number: number }>("select number from app_public.request_feed_run($1)", [feedId]));
      process.stdout.write(`Queued run ${run.number} of feed ${feedId}.\n`);
      if (!values.wait) return;
      const done = await waitForRun(client, user, feedId!, run.number);
      if (done.status === "failed") {
        process.stderr.write(`Run ${run.number} of feed ${feedId} failed: ${done.error_message}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`Run ${run.number} succeeded: ${done.rows} rows in ${done.files!.map((file) => file.name).join(", ")}.\n`);
    } else {
      const { rows: runs } = await asUser(client, user, () =>
        client.query<RunRow>(
          "select number, status, rows, files, manifest_key, manifest_sha256, error_message from app_public.feed_runs where feed_id = $1 and status = 'succeeded' order by number",
          [feedId],
        ));
      const storage = createStorage(config, createLogger(config));
      let pulled = 0;
      for (const run of runs) {
        const folder = path.join(values.dir!, String(run.number));
        if (await access(path.join(folder, "manifest.json")).then(() => true, () => false)) continue;
        await pullRun(storage, feedId!, run, folder);
        pulled++;
      }
      process.stdout.write(`Pulled ${pulled} run(s) of feed ${feedId} into ${values.dir} (${runs.length - pulled} there already).\n`);
    }
  });
}

/** Copies the run's files, each checked against its sha256, then its manifest. */
async function pullRun(storage: ExportStorage, feedId: number, run: RunRow, folder: string): Promise<void> {
  await mkdir(folder, { recursive: true });
  const files = [...(run.files ?? []), { name: "manifest.json", sha256: run.manifest_sha256! }];
  for (const file of files) {
    const fileName = `feeds/${feedId}/${run.number}/${file.name}`;
    const opened = await storage.open({ fileName, objectKey: run.manifest_key === null ? null : run.manifest_key.replace(/manifest\.json$/, file.name) });
    const hash = createHash("sha256");
    const temporary = path.join(folder, `${file.name}.partial`);
    try {
      await pipeline(
        opened.stream,
        new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            hash.update(chunk);
            callback(null, chunk);
          },
        }),
        createWriteStream(temporary),
      );
    } finally {
      await opened.close();
    }
    const digest = hash.digest("hex");
    if (digest !== file.sha256) {
      await unlink(temporary);
      throw new Error(`${fileName} does not match its sha256 (${digest}, expected ${file.sha256}); pull again.`);
    }
    await rename(temporary, path.join(folder, file.name));
  }
}

/** Re-reads the run whenever the worker notifies a change to it, until it has finished. */
async function waitForRun(client: pg.Client, user: { role: string; id: string }, feedId: number, number: number): Promise<RunRow> {
  let wake = () => {};
  const key = `feed_run:${feedId}:${number}`;
  let channel: string | undefined;
  client.on("notification", (message) => {
    if (message.channel === channel && message.payload === key) wake();
  });
  channel = await listenToExports(client);
  process.stderr.write("Waiting for a worker to run it (npx prompter worker, or npx prompter start)...\n");
  for (;;) {
    const changed = new Promise<void>((resolve) => (wake = resolve));
    const { rows: [row] } = await asUser(client, user, () =>
      client.query<RunRow>(
        "select number, status, rows, files, manifest_key, manifest_sha256, error_message from app_public.feed_runs where feed_id = $1 and number = $2",
        [feedId, number],
      ));
    if (!row) throw new Error(`Feed ${feedId} was deleted while waiting for its run.`);
    if (row.status === "succeeded" || row.status === "failed") return row;
    await Promise.race([changed, new Promise((resolve) => setTimeout(resolve, 5000))]);
  }
}
