// The REST endpoints. Every read and write runs as the caller (asCaller), so
// RLS decides what each one sees; SQL validates everything it is given.
import { pipeline } from "node:stream/promises";
import { Router, type Request, type Response } from "express";
import type pg from "pg";
import type { Config } from "../config.ts";
import { ExportFileGone, type ExportStorage, type StoredFile } from "../storage/index.ts";
import { asCaller, callerOf, DATABASE_ID, pgSettingsFor, requireCaller } from "./auth.ts";
import { HttpError } from "./errors.ts";
import type { ExportEvents } from "./export-events.ts";
import { requestIdOf } from "./request-log.ts";

interface ExportRow {
  id: string;
  user_id: string;
  kind: string;
  options: Record<string, boolean>;
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
  progress_rows: string;
  stale: boolean | null;
}

const EXPORT_COLUMNS = `e.id, e.user_id, e.kind, e.options, e.status, e.is_global, e.requested_at, e.started_at,
  e.finished_at, e.rows, e.bytes, e.sha256, e.file_name, e.object_key, e.attempts, e.error_message, e.progress_rows,
  app_public.exports_stale(e) as stale`;

const numberOrNull = (value: string | null) => (value === null ? null : Number(value));
const isoOrNull = (value: Date | null) => value?.toISOString() ?? null;
const finished = (row: ExportRow | undefined) => !row || row.status === "succeeded" || row.status === "failed";

/** The export as clients see it: a stable snake_case shape. */
function exportJson(row: ExportRow) {
  return {
    id: Number(row.id),
    user_id: Number(row.user_id),
    kind: row.kind,
    options: row.options,
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
    progress_rows: Number(row.progress_rows),
    stale: row.stale,
    status_url: `/api/exports/${row.id}`,
    download_url: row.status === "succeeded" ? `/api/exports/${row.id}/download` : null,
  };
}

/** Only these query parameters, each matching its pattern. */
function queryParameters(req: Request, allowed: Record<string, RegExp>): Record<string, string | undefined> {
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

/** The row's file, once the export has succeeded. */
const storedFile = (row: ExportRow): StoredFile => ({ fileName: row.file_name!, objectKey: row.object_key });

/** What a client sees of a file that is not in storage: 410, with the storage's explanation. */
function whenGone(error: unknown): never {
  if (error instanceof ExportFileGone) throw new HttpError(410, "EXPORT_FILE_GONE", error.message);
  throw error;
}

export function restRoutes(config: Config, pool: pg.Pool, events: ExportEvents, storage: ExportStorage): Router {
  const router = Router();
  router.use(requireCaller);
  const settings = (req: Request) => pgSettingsFor(callerOf(req), config, requestIdOf(req));

  async function readExport(req: Request, id: string): Promise<ExportRow | undefined> {
    const { rows } = await asCaller(pool, settings(req), (client) =>
      client.query<ExportRow>(`select ${EXPORT_COLUMNS} from app_public.exports e where e.id = $1`, [id]));
    return rows[0];
  }

  async function visibleExport(req: Request): Promise<ExportRow> {
    const row = await readExport(req, exportId(req));
    if (!row) throw new HttpError(404, "NOT_FOUND", "There is no export with this id that you may see.");
    return row;
  }

  router.get("/agents/effectiveness", async (req, res) => {
    queryParameters(req, {});
    const { rows } = await asCaller(pool, settings(req), (client) =>
      client.query<{ agent: string; wins: string; total: string; win_rate: number; avg_score: number }>(
        "select agent, wins, total, win_rate, avg_score from app_public.agent_effectiveness order by agent"));
    const effectiveness = Object.fromEntries(rows.map((row) => [row.agent, {
      wins: Number(row.wins),
      total: Number(row.total),
      win_rate: row.win_rate,
      avg_score: row.avg_score,
    }]));
    res.json({ success: true, effectiveness });
  });

  const exportRoute = (kind: string) => async (req: Request, res: Response) => {
    const { wait } = queryParameters(req, { wait: /^(true|false)$/ });
    const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
    if (hasBody && !req.is("application/json")) {
      throw new HttpError(415, "UNSUPPORTED_MEDIA_TYPE", "Send export options as application/json.");
    }
    const { rows: [queued] } = await asCaller(pool, settings(req), (client) =>
      client.query<ExportRow>(`select ${EXPORT_COLUMNS} from app_public.request_export($1, $2) e`,
        [kind, JSON.stringify(req.body ?? {})]));
    const row = wait === "true"
      ? await events.waitFor(queued.id, config.exportWaitSeconds, () => readExport(req, queued.id), finished)
      : queued;
    if (!row) throw new HttpError(404, "NOT_FOUND", "The export disappeared while waiting for it.");
    const body = { export_id: Number(row.id), status: row.status, status_url: `/api/exports/${row.id}`, export: exportJson(row) };
    if (wait !== "true" || !finished(row)) {
      res.status(202).json({ success: true, ...body });
    } else if (row.status === "succeeded") {
      res.json({ success: true, csv_path: storage.describe(storedFile(row)), records: Number(row.rows), ...body });
    } else {
      res.status(500).json({
        success: false,
        error: { code: "EXPORT_FAILED", message: row.error_message ?? "The export failed." },
        ...body,
      });
    }
  };
  router.post("/storage/export-multi-agent", exportRoute("multi_agent_log"));
  router.post("/storage/export-all", exportRoute("all"));

  router.get("/exports", async (req, res) => {
    const { limit = "50", offset = "0" } = queryParameters(req, { limit: /^([1-9]\d?|100)$/, offset: /^\d{1,9}$/ });
    const { rows } = await asCaller(pool, settings(req), (client) =>
      client.query<ExportRow>(
        `select ${EXPORT_COLUMNS} from app_public.exports e order by e.requested_at desc, e.id desc limit $1 offset $2`,
        [limit, offset]));
    res.json({ success: true, exports: rows.map(exportJson) });
  });

  router.get("/exports/:id", async (req, res) => {
    queryParameters(req, {});
    res.json({ success: true, export: exportJson(await visibleExport(req)) });
  });

  router.get("/exports/:id/download", async (req, res) => {
    // proxy=true: through the gateway, for clients that cannot follow a redirect to the storage.
    const { proxy } = queryParameters(req, { proxy: /^(true|false)$/ });
    const row = await visibleExport(req);
    if (row.status !== "succeeded" || !row.file_name || !row.sha256) {
      throw new HttpError(409, "EXPORT_NOT_READY", `The export is ${row.status}; download it once it has succeeded.`);
    }
    const etag = `"${row.sha256}"`;
    res.set({ ETag: etag, "Cache-Control": "private, no-cache" });
    // Not req.fresh: it ignores If-None-Match when the request says no-cache, as fetch() does.
    const known = (req.headers["if-none-match"] ?? "").split(",").map((tag) => tag.trim().replace(/^W\//, ""));
    if (known.includes(etag) || known.includes("*")) {
      res.status(304).end();
      return;
    }
    const url = proxy === "true" ? undefined : await storage.downloadUrl(storedFile(row)).catch(whenGone);
    if (url) {
      // The URL is valid for a minute and for this one object: the RLS check above decided who gets it.
      res.redirect(302, url);
      return;
    }
    const file = await storage.open(storedFile(row)).catch(whenGone);
    try {
      res.attachment(row.file_name); // Content-Disposition, and Content-Type from the extension
      res.set("Content-Length", String(file.size));
      await pipeline(file.stream, res).catch((error: NodeJS.ErrnoException) => {
        // The client went away mid-download: nothing to answer.
        if (error.code !== "ERR_STREAM_PREMATURE_CLOSE") throw error;
      });
    } finally {
      await file.close();
    }
  });

  return router;
}
