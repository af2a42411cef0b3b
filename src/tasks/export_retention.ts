// The "export_retention" job (hourly, from the worker's crontab): deletes
// finished exports older than EXPORT_RETENTION_DAYS with their files, and any
// export file older than that which no export refers to (left by a worker
// that died between writing a file and recording it).
import type { JobHelpers } from "graphile-worker";
import { assertJobObject, type TaskContext } from "../task-context.ts";

const DAY_MS = 24 * 3600 * 1000;

export default async function exportRetentionTask(payload: unknown, _helpers: JobHelpers, context: TaskContext): Promise<void> {
  assertJobObject("export_retention", payload);
  const { storage, exportRetentionDays, pool, log } = context;
  const { rows } = await pool.query<{ file_name: string | null; object_key: string | null }>(
    "select file_name, object_key from app_private.delete_expired_exports($1)",
    [exportRetentionDays],
  );
  let deletedFiles = 0;
  for (const { file_name: fileName, object_key: objectKey } of rows) {
    // A file in the other storage (written before EXPORT_STORAGE changed) is not this worker's to delete.
    if (fileName && (objectKey === null) === (storage.kind === "local") && (await storage.remove({ fileName, objectKey }))) {
      deletedFiles++;
    }
  }

  // A file is written after its export was requested, so a file older than the
  // retention period belongs to an export that was just deleted, or to none.
  deletedFiles += await storage.removeWrittenBefore(new Date(Date.now() - exportRetentionDays * DAY_MS));
  log.info({ deletedExports: rows.length, deletedFiles, retentionDays: exportRetentionDays }, "export retention");
}
