// Where export files live: the worker's EXPORT_DIR (local.ts) or an S3 bucket
// that every worker and gateway shares (s3.ts). Both keep the same promise: a
// file is visible under its name only once it is complete.
import type { Readable, Transform } from "node:stream";

/**
 * Names of the files the export task writes: `<kind>-<export id>-<attempt>-<random>.<csv|csv.gz|jsonl|jsonl.gz|parquet|zip>[.partial]`
 * (files of the first release have no `<attempt>-`). Captures the kind, the export id and the attempt.
 */
export const EXPORT_FILE_NAME = /^([a-z_]+)-(\d+)-(?:(\d+)-)?[0-9a-f]{8}\.(?:csv|csv\.gz|jsonl|jsonl\.gz|parquet|zip)(?:\.partial)?$/;

/**
 * Whether `name` is a file of an attempt of export `exportId` (of `kind`) before
 * `attempt`. Only earlier attempts: an attempt may itself be late (its worker
 * was paused after it started and presumed dead), and a newer attempt's file,
 * being written or already recorded, is not its to delete.
 */
export function isEarlierAttempt(name: string, kind: string, exportId: string, attempt: number): boolean {
  const [, fileKind, fileExportId, fileAttempt] = EXPORT_FILE_NAME.exec(name) ?? [];
  return fileKind === kind && fileExportId === exportId && (fileAttempt === undefined || Number(fileAttempt) < attempt);
}

/** Files of feed runs: `feeds/<feed id>/<run number>/<name>`, the name a file of the run or manifest.json. */
export const FEED_FILE_NAME = /^feeds\/\d+\/\d+\/[a-z_]+\.[a-z.]+$/;

/** Where an export row says its file is: its name, and its S3 key (null: in EXPORT_DIR). */
export interface StoredFile {
  fileName: string;
  objectKey: string | null;
}

/** A stored file opened for reading. */
export interface OpenedFile {
  size: number;
  stream: Readable;
  /** Releases the file if the stream was not read to its end. */
  close(): Promise<void>;
}

/** The file an export row refers to is not (or no longer) in this storage. */
export class ExportFileGone extends Error {
  constructor(message = "The export file is no longer on the server; request a new export.") {
    super(message);
  }
}

export interface ExportStorage {
  readonly kind: "local" | "s3";
  /**
   * Streams the stages into the file `fileName`. Resolves, with the S3 key (null
   * for EXPORT_DIR), once the complete file is visible under that name; on
   * failure or abort nothing is visible and nothing is left behind.
   */
  save(fileName: string, stages: [Readable, ...Transform[]], signal: AbortSignal): Promise<string | null>;
  /** The S3 key a file of this name is saved under (null: EXPORT_DIR, where the name is the path). */
  objectKeyOf(fileName: string): string | null;
  /** The content of a small file (a feed run's manifest) by name, or undefined when there is none. */
  read(fileName: string): Promise<Buffer | undefined>;
  /** Deletes the file; false when it was not there. */
  remove(file: StoredFile): Promise<boolean>;
  /** Deletes the files of attempts of export `exportId` before `attempt` (see isEarlierAttempt). */
  removeEarlierAttempts(kind: string, exportId: string, attempt: number): Promise<void>;
  /** Deletes export files written before `cutoff`; returns how many. */
  removeWrittenBefore(cutoff: Date): Promise<number>;
  /** Opens the file for reading, or throws ExportFileGone. */
  open(file: StoredFile): Promise<OpenedFile>;
  /**
   * A short-lived URL that downloads the file as `fileName` without this
   * process, or undefined when the storage has none (EXPORT_DIR); throws ExportFileGone.
   */
  downloadUrl(file: StoredFile): Promise<string | undefined>;
  /**
   * The file's path on this machine, for the gateway to serve with Range
   * support, or undefined when the storage is not a directory here (S3); throws ExportFileGone.
   */
  localPath(file: StoredFile): string | undefined;
  /** Where the file is, for people: a path or an s3:// URL. */
  describe(file: StoredFile): string;
}

/** The Content-Type a download of this file gets. */
export function contentTypeOf(fileName: string): string {
  if (fileName.endsWith(".zip")) return "application/zip";
  if (fileName.endsWith(".gz")) return "application/gzip";
  if (fileName.endsWith(".parquet")) return "application/vnd.apache.parquet";
  if (fileName.endsWith(".jsonl")) return "application/jsonl; charset=utf-8";
  if (fileName.endsWith(".json")) return "application/json; charset=utf-8";
  return "text/csv; charset=utf-8";
}
