// REST for feeds: create, list, read, pause, resume and delete feeds; queue a
// run (?wait=true waits for it as exports do); list runs with their files and
// download them, with the token or a signed link as exports are. Every call runs as the caller, so RLS decides what each sees;
// SQL checks everything it is given (sql/functions/203, 204).
import { Router, type Request, type RequestHandler } from "express";
import type pg from "pg";
import type { Config } from "../config.ts";
import type { ExportStorage, StoredFile } from "../storage/index.ts";
import { callerTransactions, requireCaller, signedInCaller } from "./auth.ts";
import { DATABASE_ID } from "./caller.ts";
import { downloadLink, feedFileSubject } from "./download-links.ts";
import { HttpError } from "./errors.ts";
import type { ExportEvents } from "./export-events.ts";
import { refuseOtherMethods } from "./methods.ts";
import { downloadCaller, queryParameters, sendStoredFile } from "./rest.ts";

interface FeedRow {
  id: string;
  user_id: string;
  kind: string;
  format: string;
  options: Record<string, boolean>;
  every: string | null;
  filters: Record<string, unknown>;
  is_global: boolean;
  paused: boolean;
  next_run_at: Date | null;
  created_at: Date;
  last_run: RunRow | null;
}

interface RunRow {
  feed_id: string;
  number: number;
  status: "queued" | "running" | "succeeded" | "failed";
  requested_at: string | Date;
  started_at: string | Date | null;
  finished_at: string | Date | null;
  attempts: number;
  rows: string | number | null;
  files: { name: string; rows: number; bytes: number; sha256: string }[] | null;
  manifest_key: string | null;
  manifest_sha256: string | null;
  error_message: string | null;
}

const EVERY_NAMES: Record<string, string> = { "00:20:00": "20m", "01:00:00": "1h", "1 day": "1d", "7 days": "1w" };
const FEED_COLUMNS = `f.id, f.user_id, f.kind, f.format, f.options, f.every::text, f.filters, f.is_global, f.paused, f.next_run_at, f.created_at,
  (select to_jsonb(r) - 'snapshot' - 'since_snapshot' from app_public.feed_runs r where r.feed_id = f.id order by r.number desc limit 1) as last_run`;
const RUN_COLUMNS = `r.feed_id, r.number, r.status, r.requested_at, r.started_at, r.finished_at, r.attempts, r.rows, r.files,
  r.manifest_key, r.manifest_sha256, r.error_message`;

const iso = (value: string | Date | null) => (value === null ? null : new Date(value).toISOString());
const finished = (row: RunRow | undefined) => !row || row.status === "succeeded" || row.status === "failed";

function runJson(row: RunRow) {
  const base = `/api/feeds/${row.feed_id}/runs/${row.number}`;
  const succeeded = row.status === "succeeded";
  return {
    feed_id: Number(row.feed_id),
    number: row.number,
    status: row.status,
    requested_at: iso(row.requested_at),
    started_at: iso(row.started_at),
    finished_at: iso(row.finished_at),
    attempts: row.attempts,
    rows: row.rows === null ? null : Number(row.rows),
    files: succeeded ? (row.files ?? []).map((file) => ({ ...file, download_url: `${base}/files/${file.name}` })) : [],
    manifest_url: succeeded ? `${base}/files/manifest.json` : null,
    error: row.error_message,
    status_url: base,
  };
}

function feedJson(row: FeedRow) {
  return {
    id: Number(row.id),
    user_id: Number(row.user_id),
    kind: row.kind,
    format: row.format,
    options: row.options,
    every: row.every === null ? null : (EVERY_NAMES[row.every] ?? row.every),
    filters: row.filters,
    is_global: row.is_global,
    paused: row.paused,
    next_run_at: iso(row.next_run_at),
    created_at: iso(row.created_at),
    last_run: row.last_run ? runJson({ ...row.last_run, feed_id: row.id }) : null,
    url: `/api/feeds/${row.id}`,
    runs_url: `/api/feeds/${row.id}/runs`,
  };
}

function idParameter(req: Request, name: string, what: string): string {
  const value = String(req.params[name]);
  if (!DATABASE_ID.test(value)) throw new HttpError(400, "BAD_PARAMETER", `A ${what} is a positive whole number.`);
  return value;
}

const FILE_NAME = /^[a-z_]+\.[a-z.]+$/;
const FEED_FIELDS = ["kind", "format", "every", "filters", "options", "is_global"];

export function feedRoutes(config: Config, pool: pg.Pool, events: ExportEvents, storage: ExportStorage): Router {
  const router = Router();
  const asCaller = callerTransactions(pool, config);
  const route = (routePath: string, handlers: Partial<Record<"get" | "post" | "delete", RequestHandler[]>>) => {
    const declared = router.route(routePath);
    for (const [method, chain] of Object.entries(handlers)) declared[method as "get" | "post" | "delete"](...chain);
    refuseOtherMethods(declared);
  };

  async function visibleFeed(req: Request): Promise<FeedRow> {
    const id = idParameter(req, "id", "feed id");
    const { rows } = await asCaller(req, (client) => client.query<FeedRow>(`select ${FEED_COLUMNS} from app_public.feeds f where f.id = $1`, [id]));
    if (!rows[0]) throw new HttpError(404, "NOT_FOUND", "There is no feed with this id that you may see.");
    return rows[0];
  }

  async function readRun(req: Request, feedId: string, number: string | number): Promise<RunRow | undefined> {
    const { rows } = await asCaller(req, (client) =>
      client.query<RunRow>(`select ${RUN_COLUMNS} from app_public.feed_runs r where r.feed_id = $1 and r.number = $2`, [feedId, number]));
    return rows[0];
  }

  route("/feeds", {
    post: [requireCaller, async (req, res) => {
      queryParameters(req, {});
      if (!req.is("application/json")) throw new HttpError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the feed as application/json.");
      const body = req.body as Record<string, unknown>;
      if (typeof body !== "object" || body === null || Array.isArray(body)) {
        throw new HttpError(400, "BAD_BODY", `A feed is a JSON object with ${FEED_FIELDS.join(", ")}.`);
      }
      const unknown = Object.keys(body).filter((key) => !FEED_FIELDS.includes(key));
      if (unknown.length) throw new HttpError(400, "BAD_BODY", `Unknown fields: ${unknown.join(", ")}. A feed has ${FEED_FIELDS.join(", ")}.`);
      for (const text of ["kind", "format", "every"]) {
        if (body[text] !== undefined && body[text] !== null && typeof body[text] !== "string") {
          throw new HttpError(400, "BAD_BODY", `${text} is a string.`);
        }
      }
      if (body.is_global !== undefined && typeof body.is_global !== "boolean") throw new HttpError(400, "BAD_BODY", "is_global is true or false.");
      const { rows: [feed] } = await asCaller(req, (client) =>
        client.query<FeedRow>(`select ${FEED_COLUMNS} from app_public.create_feed($1, $2, $3, $4, $5, $6) f`, [
          body.kind ?? null, body.format ?? null, body.every ?? null,
          JSON.stringify(body.filters ?? {}), JSON.stringify(body.options ?? {}), body.is_global ?? false,
        ]));
      res.status(201).location(`/api/feeds/${feed.id}`).json({ success: true, feed: feedJson(feed) });
    }],
    get: [requireCaller, async (req, res) => {
      queryParameters(req, {});
      const { rows } = await asCaller(req, (client) => client.query<FeedRow>(`select ${FEED_COLUMNS} from app_public.feeds f order by f.id`));
      res.json({ success: true, feeds: rows.map(feedJson) });
    }],
  });

  route("/feeds/:id", {
    get: [requireCaller, async (req, res) => {
      queryParameters(req, {});
      res.json({ success: true, feed: feedJson(await visibleFeed(req)) });
    }],
    delete: [requireCaller, async (req, res) => {
      queryParameters(req, {});
      const id = idParameter(req, "id", "feed id");
      const { rowCount } = await asCaller(req, (client) => client.query("delete from app_public.feeds where id = $1", [id]));
      if (!rowCount) throw new HttpError(404, "NOT_FOUND", "There is no feed of yours with this id.");
      res.status(204).end();
    }],
  });

  for (const [action, paused] of [["pause", true], ["resume", false]] as const) {
    route(`/feeds/:id/${action}`, { post: [requireCaller, async (req, res) => {
      queryParameters(req, {});
      const id = idParameter(req, "id", "feed id");
      const { rows: [feed] } = await asCaller(req, (client) =>
        client.query<FeedRow>(`select ${FEED_COLUMNS} from app_public.set_feed_paused($1, $2) f`, [id, paused]));
      res.json({ success: true, feed: feedJson(feed) });
    }] });
  }

  route("/feeds/:id/runs", {
    post: [requireCaller, async (req, res) => {
      const { wait } = queryParameters(req, { wait: /^(true|false)$/ });
      const id = idParameter(req, "id", "feed id");
      const { rows: [queued] } = await asCaller(req, (client) =>
        client.query<RunRow>(`select ${RUN_COLUMNS} from app_public.request_feed_run($1) r`, [id]));
      const row = wait === "true"
        ? await events.waitFor(`feed_run:${id}:${queued.number}`, config.exportWaitSeconds, () => readRun(req, id, queued.number), finished, queued)
        : queued;
      if (!row) throw new HttpError(404, "NOT_FOUND", "The feed disappeared while waiting for its run.");
      const body = { success: row.status !== "failed", run: runJson(row) };
      if (!finished(row)) res.status(202).location(body.run.status_url).json(body);
      else res.status(row.status === "succeeded" ? 200 : 500).json(row.status === "succeeded" ? body : { ...body, error: { code: "FEED_RUN_FAILED", message: row.error_message ?? "The run failed." } });
    }],
    get: [requireCaller, async (req, res) => {
      queryParameters(req, {});
      const feed = await visibleFeed(req);
      const { rows } = await asCaller(req, (client) =>
        client.query<RunRow>(`select ${RUN_COLUMNS} from app_public.feed_runs r where r.feed_id = $1 order by r.number`, [feed.id]));
      res.json({ success: true, runs: rows.map(runJson) });
    }],
  });

  route("/feeds/:id/runs/:number", { get: [requireCaller, async (req, res) => {
    queryParameters(req, {});
    const row = await readRun(req, idParameter(req, "id", "feed id"), idParameter(req, "number", "run number"));
    if (!row) throw new HttpError(404, "NOT_FOUND", "There is no run with this number of a feed you may see.");
    res.json({ success: true, run: runJson(row) });
  }] });

  /** A file the run lists (or its manifest), once the run has succeeded; 404 or 409 otherwise. */
  async function runFile(req: Request, feedId: string, number: string, name: string): Promise<{ file: StoredFile; sha256: string; bytes: number | null }> {
    const row = await readRun(req, feedId, number);
    if (!row) throw new HttpError(404, "NOT_FOUND", "There is no run with this number of a feed you may see.");
    if (row.status !== "succeeded") throw new HttpError(409, "FEED_RUN_NOT_READY", `The run is ${row.status}; download its files once it has succeeded.`);
    const listed = row.files?.find((file) => file.name === name);
    const sha256 = name === "manifest.json" ? row.manifest_sha256 : listed?.sha256;
    if (!FILE_NAME.test(name) || !sha256) throw new HttpError(404, "NOT_FOUND", "The run has no file of this name; its manifest lists them.");
    const fileName = `feeds/${feedId}/${row.number}/${name}`;
    const objectKey = row.manifest_key === null ? null : row.manifest_key.replace(/manifest\.json$/, name);
    return { file: { fileName, objectKey }, sha256, bytes: listed?.bytes ?? null };
  }

  const fileParameters = (req: Request) =>
    [idParameter(req, "id", "feed id"), idParameter(req, "number", "run number"), String(req.params.name)] as const;

  route("/feeds/:id/runs/:number/files/:name", { get: [async (req, res) => {
    const [feedId, number, name] = fileParameters(req);
    const { proxy, afterSessionCheck } = downloadCaller(req, config.jwtSecret, feedFileSubject(feedId, number, name));
    const { file, sha256, bytes } = await runFile(req, feedId, number, name);
    afterSessionCheck();
    await sendStoredFile(req, res, storage, file, { fileName: file.fileName, sha256, bytes }, proxy);
  }] });

  // As for exports: a link the browser can follow without the token (src/server/download-links.ts).
  route("/feeds/:id/runs/:number/files/:name/download-link", { post: [requireCaller, async (req, res) => {
    queryParameters(req, {});
    const [feedId, number, name] = fileParameters(req);
    await runFile(req, feedId, number, name);
    const path = `/api/feeds/${feedId}/runs/${number}/files/${name}`;
    const link = downloadLink(config.jwtSecret, feedFileSubject(feedId, number, name), signedInCaller(req), Date.now(), path);
    res.json({ success: true, url: link.url, expires_at: link.expiresAt.toISOString() });
  }] });

  return router;
}
