// The REST endpoints. Every read and write runs as the caller (asCaller), so
// RLS decides what each one sees; SQL validates everything it is given.
import { Router, type Request, type RequestHandler, type Response } from "express";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import type { Config } from "../config.ts";
import type { ReadReplicas } from "../db/replicas.ts";
import { contentTypeOf, ExportFileGone, type ExportStorage, type OpenedFile, type StoredFile } from "../storage/index.ts";
import { callerTransactions, requireCaller, signedInCaller } from "./auth.ts";
import { DATABASE_ID, setCaller } from "./caller.ts";
import { DOWNLOAD_LINK_PARAMETERS, downloadLink, linkedCaller, linkStillHolds } from "./download-links.ts";
import { analyticsRoutes, rangeOf, RANGE_PARAMETERS, WINDOW_COLUMNS, windowFiguresJson, type WindowFigures } from "./analytics.ts";
import { HttpError } from "./errors.ts";
import { replicaReads } from "./replica-reads.ts";
import { refuseOtherMethods } from "./methods.ts";
import type { ExportEvents } from "./export-events.ts";

interface ExportRow {
  id: string;
  user_id: string;
  kind: string;
  format: string;
  options: Record<string, boolean>;
  filters: Record<string, unknown>;
  status: "queued" | "running" | "succeeded" | "failed";
  is_global: boolean;
  requested_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  rows: string | null;
  bytes: string | null;
  sha256: string | null;
  file_name: string | null;
  object_key: string | null;
  attempts: number;
  error_message: string | null;
  error_code: string | null;
  progress_rows: string;
  stale: boolean | null;
  downloadable: boolean;
  requested_by: string | null;
}

const EXPORT_COLUMNS = `e.id, e.user_id, e.kind, e.format, e.options, e.filters, e.status, e.is_global, e.requested_at, e.started_at,
  e.finished_at, e.rows, e.bytes, e.sha256, e.file_name, e.object_key, e.attempts, e.error_message, e.error_code, e.progress_rows,
  app_public.exports_stale(e) as stale, app_public.exports_downloadable(e) as downloadable,
  (select u.username from app_public.users u where u.id = e.user_id) as requested_by`;

const numberOrNull = (value: string | null) => (value === null ? null : Number(value));
const isoOrNull = (value: Date | null) => value?.toISOString() ?? null;
const finished = (row: ExportRow | undefined) => !row || row.status === "succeeded" || row.status === "failed";

/** The export as clients see it: a stable snake_case shape. */
function exportJson(row: ExportRow) {
  return {
    id: Number(row.id),
    user_id: Number(row.user_id),
    requested_by: row.requested_by,
    kind: row.kind,
    format: row.format,
    options: row.options,
    filters: row.filters,
    status: row.status,
    is_global: row.is_global,
    requested_at: row.requested_at.toISOString(),
    started_at: isoOrNull(row.started_at),
    finished_at: isoOrNull(row.finished_at),
    rows: numberOrNull(row.rows),
    bytes: numberOrNull(row.bytes),
    sha256: row.sha256,
    file_name: row.file_name,
    attempts: row.attempts,
    error: row.error_message,
    error_code: row.error_code,
    progress_rows: Number(row.progress_rows),
    stale: row.stale,
    status_url: `/api/exports/${row.id}`,
    download_url: row.status === "succeeded" && row.downloadable ? `/api/exports/${row.id}/download` : null,
  };
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** Only these query parameters, each matching its pattern. */
export function queryParameters(req: Request, allowed: Record<string, RegExp>): Record<string, string | undefined> {
  const values: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(req.query)) {
    const pattern = allowed[name];
    if (!pattern) throw new HttpError(400, "UNKNOWN_PARAMETER", `Unknown query parameter "${name}".`);
    if (typeof value !== "string" || !pattern.test(value)) {
      throw new HttpError(400, "BAD_PARAMETER", `Query parameter "${name}" must match ${pattern.source}.`);
    }
    values[name] = value;
  }
  return values;
}

function exportId(req: Request): string {
  const id = String(req.params.id);
  if (!DATABASE_ID.test(id)) throw new HttpError(400, "BAD_PARAMETER", "An export id is a positive whole number.");
  return id;
}

/** The list's page size when the client names none. */
const DEFAULT_PAGE = 50;

/** The row's file, once the export has succeeded. */
const storedFile = (row: ExportRow): StoredFile => ({ fileName: row.file_name!, objectKey: row.object_key });

/** What a client sees of a file that is not in storage: 410, with the storage's explanation. */
export function whenGone(error: unknown): never {
  if (error instanceof ExportFileGone) throw new HttpError(410, "EXPORT_FILE_GONE", error.message);
  throw error;
}

/** proxy=true: through the gateway, for clients that cannot follow a redirect to the storage. */
export const PROXY_PARAMETER = { proxy: /^(true|false)$/ };

export function restRoutes(config: Config, pool: pg.Pool, events: ExportEvents, storage: ExportStorage, replicas?: ReadReplicas): Router {
  const router = Router();
  const asCaller = callerTransactions(pool, config);
  const readAsCaller = replicaReads(asCaller, replicas, config);
  /** Declares a path's handlers; other methods on it answer 405. */
  const route = (routePath: string, handlers: Partial<Record<"get" | "post", RequestHandler[]>>) => {
    const declared = router.route(routePath);
    for (const [method, chain] of Object.entries(handlers)) declared[method as "get" | "post"](...chain);
    refuseOtherMethods(declared);
  };

  async function readExport(req: Request, id: string): Promise<ExportRow | undefined> {
    const { rows } = await asCaller(req, (client) =>
      client.query<ExportRow>(`select ${EXPORT_COLUMNS} from app_public.exports e where e.id = $1`, [id]));
    return rows[0];
  }

  async function visibleExport(req: Request): Promise<ExportRow> {
    const row = await readExport(req, exportId(req));
    if (!row) throw new HttpError(404, "NOT_FOUND", "There is no export with this id that you may see.");
    return row;
  }

  /** The export, once it has a file to download. */
  async function downloadableExport(req: Request): Promise<ExportRow & { file_name: string; sha256: string }> {
    const row = await visibleExport(req);
    if (row.status !== "succeeded" || !row.file_name || !row.sha256) {
      throw new HttpError(409, "EXPORT_NOT_READY", `The export is ${row.status}; download it once it has succeeded.`);
    }
    if (!row.downloadable) {
      throw new HttpError(403, "EXPORT_NOT_DOWNLOADABLE", "This export holds everyone's data, which only an admin may download.");
    }
    return row as ExportRow & { file_name: string; sha256: string };
  }

  route("/agents/effectiveness", { get: [requireCaller, async (req, res) => {
    // With a range: the figures of the versions created in it (agent_effectiveness_between).
    const range = queryParameters(req, RANGE_PARAMETERS);
    if (Object.keys(range).length > 0) {
      const { rows } = await readAsCaller(req, (client) => client.query<WindowFigures>(
        `select ${WINDOW_COLUMNS} from app_public.agent_effectiveness_between($1, $2)`, rangeOf(range)));
      res.json({ success: true, effectiveness: Object.fromEntries(rows.map((row) => [row.agent, windowFiguresJson(row)])) });
      return;
    }
    const { rows } = await readAsCaller(req, (client) =>
      client.query<{ agent: string; wins: string; total: string; win_rate: number; avg_score: number; win_rate_lower: number; win_rate_upper: number }>(
        "select agent, wins, total, win_rate, avg_score, win_rate_lower, win_rate_upper from app_public.agent_effectiveness order by agent"));
    const effectiveness = Object.fromEntries(rows.map((row) => [row.agent, {
      wins: Number(row.wins),
      total: Number(row.total),
      win_rate: row.win_rate,
      avg_score: row.avg_score,
      win_rate_lower: row.win_rate_lower,
      win_rate_upper: row.win_rate_upper,
    }]));
    res.json({ success: true, effectiveness });
  }] });

  analyticsRoutes(route, readAsCaller, queryParameters);

  // The same JSON as the recordRun mutation's `run`; SQL checks every element.
  route("/runs", { post: [requireCaller, async (req, res) => {
    queryParameters(req, {});
    if (!req.is("application/json")) throw new HttpError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the run as application/json.");
    const { rows: [{ result }] } = await asCaller(req, (client) =>
      client.query<{ result: { replayed: boolean } }>("select app_public.record_run($1) as result", [JSON.stringify(req.body)]));
    res.status(result.replayed ? 200 : 201).json({ success: true, run: result });
  }] });

  const exportRoute = (kind: string) => async (req: Request, res: Response) => {
    const { wait } = queryParameters(req, { wait: /^(true|false)$/ });
    const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
    if (hasBody && !req.is("application/json")) {
      throw new HttpError(415, "UNSUPPORTED_MEDIA_TYPE", "Send export options as application/json.");
    }
    // The body holds the options, and format and filters; SQL checks them all (a body that is no object is the options' to refuse).
    const request: unknown = req.body ?? {};
    const { format = "csv", filters = {}, ...options } = isPlainObject(request) ? request : {};
    const { rows: [queued] } = await asCaller(req, (client) =>
      client.query<ExportRow>(`select ${EXPORT_COLUMNS} from app_public.request_export($1, $2, $3, $4) e`,
        [kind, JSON.stringify(isPlainObject(request) ? options : request), format, JSON.stringify(filters)]));
    const row = wait === "true"
      ? await events.waitFor(queued.id, config.exportWaitSeconds, () => readExport(req, queued.id), finished, queued)
      : queued;
    if (!row) throw new HttpError(404, "NOT_FOUND", "The export disappeared while waiting for it.");
    const body = { export_id: Number(row.id), status: row.status, status_url: `/api/exports/${row.id}`, export: exportJson(row) };
    if (wait !== "true" || !finished(row)) {
      res.status(202).location(body.status_url).json({ success: true, ...body });
    } else if (row.status === "succeeded") {
      // The file's name in the export storage (EXPORT_DIR or S3_PREFIX), never the server's own path, and where to fetch it.
      res.json({ success: true, csv_path: row.file_name, download_url: exportJson(row).download_url, records: Number(row.rows), ...body });
    } else {
      res.status(500).json({
        success: false,
        error: { code: row.error_code ?? "EXPORT_FAILED", message: row.error_message ?? "The export failed." },
        ...body,
      });
    }
  };
  route("/storage/export-multi-agent", { post: [requireCaller, exportRoute("multi_agent_log")] });
  route("/storage/export-all", { post: [requireCaller, exportRoute("all")] });

  route("/exports", { get: [requireCaller, async (req, res) => {
    const query = queryParameters(req, { limit: /^([1-9]\d?|100)$/, offset: /^\d{1,9}$/ });
    const limit = Number(query.limit ?? DEFAULT_PAGE);
    const offset = Number(query.offset ?? 0);
    const [{ rows }, { rows: [{ total }] }] = await readAsCaller(req, (client) => Promise.all([
      client.query<ExportRow>(
        `select ${EXPORT_COLUMNS} from app_public.exports e order by e.requested_at desc, e.id desc limit $1 offset $2`,
        [limit, offset]),
      client.query<{ total: number }>("select count(*)::int as total from app_public.exports"),
    ]));
    const next = offset + limit < total ? `/api/exports?limit=${limit}&offset=${offset + limit}` : null;
    if (next) res.links({ next });
    res.json({ success: true, exports: rows.map(exportJson), total, next_url: next });
  }] });

  route("/exports/:id", { get: [requireCaller, async (req, res) => {
    queryParameters(req, {});
    res.json({ success: true, export: exportJson(await visibleExport(req)) });
  }] });

  route("/exports/:id/download-link", { post: [requireCaller, async (req, res) => {
    queryParameters(req, {});
    const row = await downloadableExport(req);
    const link = downloadLink(config.jwtSecret, row.id, signedInCaller(req));
    res.json({ success: true, url: link.url, expires_at: link.expiresAt.toISOString() });
  }] });

  route("/exports/:id/download", { get: [async (req, res) => {
    const { proxy, afterSessionCheck } = downloadCaller(req, config.jwtSecret, exportId(req));
    const row = await downloadableExport(req);
    afterSessionCheck();
    await sendStoredFile(req, res, storage, storedFile(row), { fileName: row.file_name, sha256: row.sha256, bytes: row.bytes }, proxy);
  }] });

  return router;
}

/**
 * Who downloads: a signed link (made for `subject`) stands for its caller;
 * without one, the request's own token does. `afterSessionCheck` refuses an
 * admin's link once SQL has found its user no longer is one.
 */
export function downloadCaller(req: Request, secret: string, subject: string): { proxy: string | undefined; afterSessionCheck: () => void } {
  if (req.query.signature === undefined) {
    const { proxy } = queryParameters(req, PROXY_PARAMETER);
    signedInCaller(req);
    return { proxy, afterSessionCheck: () => {} };
  }
  const parameters = queryParameters(req, { ...DOWNLOAD_LINK_PARAMETERS, ...PROXY_PARAMETER });
  const linked = linkedCaller(secret, subject, parameters);
  setCaller(req, linked);
  return { proxy: parameters.proxy, afterSessionCheck: () => linkStillHolds(linked) };
}

/**
 * Answers a download of a stored file: 304 when the client has it (ETag is its
 * sha256), a redirect to the storage's URL (S3) unless `proxy`, else the file
 * (with Range support from EXPORT_DIR); 410 when it is gone. Exports and feed
 * runs alike.
 */
export async function sendStoredFile(
  req: Request,
  res: Response,
  storage: ExportStorage,
  file: StoredFile,
  row: { fileName: string; sha256: string; bytes: string | number | null },
  proxy: string | undefined,
): Promise<void> {
  const etag = `"${row.sha256}"`;
  res.set({ ETag: etag, "Cache-Control": "private, no-cache" });
  // Not req.fresh: it ignores If-None-Match when the request says no-cache, as fetch() does.
  const known = (req.headers["if-none-match"] ?? "").split(",").map((tag) => tag.trim().replace(/^W\//, ""));
  if (known.includes(etag) || known.includes("*")) {
    res.status(304).end();
    return;
  }
  const url = proxy === "true" ? undefined : await storage.downloadUrl(file).catch(whenGone);
  if (url) {
    // The URL is valid briefly and for this one object: the RLS check above decided who gets it.
    // No body: express's "Found. Redirecting to ..." text is undocumented and of no use to a client.
    res.status(302).location(url).end();
    return;
  }
  const localPath = await Promise.resolve(file).then(storage.localPath).catch(whenGone);
  res.attachment(path.basename(row.fileName)); // Content-Disposition
  // The format's type, as S3 serves it (express knows no .parquet or .jsonl).
  res.set("Content-Type", contentTypeOf(row.fileName));
  if (localPath === undefined) {
    await streamThrough(res, await storage.open(file).catch(whenGone));
    return;
  }
  // send (behind sendFile) answers Range and If-Range (206, 416), sends Accept-Ranges
  // and Last-Modified, and streams the file; the ETag set above is the one it compares.
  await new Promise<void>((resolve, reject) => {
    res.sendFile(localPath, { etag: false, cacheControl: false, lastModified: true, acceptRanges: true }, (error?: NodeJS.ErrnoException) => {
      // The client went away mid-download: nothing to answer.
      if (!error || error.code === "ECONNABORTED") return resolve();
      if (res.headersSent) return reject(error);
      // The answer is an error now, not the file.
      for (const name of ["Content-Disposition", "Content-Type", "ETag", "Last-Modified"]) res.removeHeader(name);
      if (error.code === "ENOENT") return reject(new ExportFileGone());
      if ((error as { status?: number }).status === 416) {
        // send has set Content-Range: bytes */<size>.
        return reject(new HttpError(416, "RANGE_NOT_SATISFIABLE", `The range asked for is outside the file (${row.bytes} bytes).`));
      }
      reject(error);
    });
  }).catch(whenGone);
}

/** Streams a file from the storage through the gateway (no Range: the whole file). */
async function streamThrough(res: Response, file: OpenedFile): Promise<void> {
  try {
    res.set("Content-Length", String(file.size));
    await pipeline(file.stream, res).catch((error: NodeJS.ErrnoException) => {
      // The client went away mid-download: nothing to answer.
      if (error.code !== "ERR_STREAM_PREMATURE_CLOSE") throw error;
    });
  } finally {
    await file.close();
  }
}
