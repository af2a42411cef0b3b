// The "export_retention" job (hourly, from the worker's crontab): deletes
// finished exports older than EXPORT_RETENTION_DAYS with their files, and any
// export file older than that which no export refers to (left by a worker
// that died between writing a file and recording it).
import type { JobHelpers } from "graphile-worker";
import { readdir, stat, unlink } from "node:fs/promises";
import path from "node:path";
import type { TaskContext } from "../task-context.ts";
import { EXPORT_FILE_NAME } from "./export.ts";

const DAY_MS = 24 * 3600 * 1000;

export default async function exportRetentionTask(payload: unknown, _helpers: JobHelpers, context: TaskContext): Promise<void> {
  // Cron jobs carry graphile-worker's own `_cron` details and nothing of ours.
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new Error(`The export_retention job's payload must be an object, not ${JSON.stringify(payload)}.`);
  }
  const { exportDir, exportRetentionDays, pool, log } = context;
  const { rows } = await pool.query<{ file_name: string | null }>(
    "select file_name from app_private.delete_expired_exports($1) as file_name",
    [exportRetentionDays],
  );
  let deletedFiles = 0;
  const remove = (name: string) =>
    unlink(path.join(exportDir, name)).then(
      () => void deletedFiles++,
      (error: NodeJS.ErrnoException) => {
        if (error.code !== "ENOENT") throw error;
      },
    );
  for (const { file_name } of rows) if (file_name) await remove(file_name);

  // A file is written after its export was requested, so a file older than the
  // retention period belongs to an export that was just deleted, or to none.
  const cutoff = Date.now() - exportRetentionDays * DAY_MS;
  for (const name of await readdir(exportDir)) {
    if (!EXPORT_FILE_NAME.test(name)) continue;
    const { mtimeMs } = await stat(path.join(exportDir, name)).catch(() => ({ mtimeMs: Infinity }));
    if (mtimeMs < cutoff) await remove(name);
  }
  log.info({ deletedExports: rows.length, deletedFiles, retentionDays: exportRetentionDays }, "export retention");
}
