// The export storage the configuration names (EXPORT_STORAGE).
import type { Config } from "../config.ts";
import type { Log } from "../log.ts";
import { localStorage } from "./local.ts";
import { s3Storage } from "./s3.ts";
import type { ExportStorage } from "./storage.ts";

export { contentTypeOf, EXPORT_FILE_NAME, ExportFileGone, type ExportStorage, type OpenedFile, type StoredFile } from "./storage.ts";

export function createStorage(config: Config, log: Log): ExportStorage {
  const settings = config.exportStorage;
  return settings.kind === "s3" ? s3Storage(settings, log) : localStorage(config.exportDir);
}
