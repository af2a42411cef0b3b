// REST reads of the per-day agent analytics (sql/functions/232-234): windows,
// series, head-to-head and ratings, as the caller. SQL checks ranges and
// buckets (PA* codes, 400); the gateway only checks that a day is a calendar day.
import type { Request, RequestHandler } from "express";
import type pg from "pg";
import { requireCaller } from "./auth.ts";
import { HttpError } from "./errors.ts";

type Route = (routePath: string, handlers: Partial<Record<"get" | "post", RequestHandler[]>>) => void;
type AsCaller = <T>(req: Request, work: (client: pg.PoolClient) => Promise<T>) => Promise<T>;
type QueryParameters = (req: Request, allowed: Record<string, RegExp>) => Record<string, string | undefined>;

/** A day as the query gives it; whether it is on the calendar is checked by dayOrNull. */
const DAY = /^\d{4}-\d{2}-\d{2}$/;
export const RANGE_PARAMETERS = { from: DAY, to: DAY };

/** The day, or null when missing (SQL says what a range needs). */
function dayOrNull(query: Record<string, string | undefined>, name: string): string | null {
  const value = query[name];
  if (value === undefined) return null;
  const parsed = Date.parse(`${value}T00:00:00Z`);
  if (Number.isNaN(parsed) || new Date(parsed).toISOString().slice(0, 10) !== value) {
    throw new HttpError(400, "BAD_PARAMETER", `Query parameter "${name}" is not a calendar day (YYYY-MM-DD).`);
  }
  return value;
}

export const rangeOf = (query: Record<string, string | undefined>) => [dayOrNull(query, "from"), dayOrNull(query, "to")];

export interface WindowFigures {
  agent: string; wins: string; total: string; win_rate: number; win_rate_lower: number; win_rate_upper: number;
  avg_score: number; scored: string; avg_clarity: number; avg_specificity: number; avg_actionability: number;
  avg_structure: number; avg_context_use: number;
}

export const WINDOW_COLUMNS = `agent, wins, total, win_rate, win_rate_lower, win_rate_upper, avg_score, scored,
  avg_clarity, avg_specificity, avg_actionability, avg_structure, avg_context_use`;

/** An agent's figures in a window, as JSON (counts as numbers). */
export function windowFiguresJson({ agent: _agent, wins, total, scored, ...rates }: WindowFigures) {
  return { wins: Number(wins), total: Number(total), ...rates, scored: Number(scored) };
}

export function analyticsRoutes(route: Route, asCaller: AsCaller, queryParameters: QueryParameters): void {
  route("/agents/effectiveness/series", { get: [requireCaller, async (req, res) => {
    const query = queryParameters(req, { ...RANGE_PARAMETERS, bucket: /^[a-z]{1,20}$/ });
    const { rows } = await asCaller(req, (client) => client.query<WindowFigures & { bucket_start: string }>(
      `select bucket_start::text, ${WINDOW_COLUMNS} from app_public.agent_effectiveness_series($1, $2, $3)`,
      [query.bucket ?? null, ...rangeOf(query)]));
    res.json({ success: true, bucket: query.bucket, series: rows.map((row) => ({ bucket_start: row.bucket_start, agent: row.agent, ...windowFiguresJson(row) })) });
  }] });

  route("/agents/head-to-head", { get: [requireCaller, async (req, res) => {
    const { rows } = await asCaller(req, (client) => client.query<{ agent: string; opponent: string; wins: string; losses: string; ties: string }>(
      "select agent, opponent, wins, losses, ties from app_public.agent_head_to_head($1, $2)", rangeOf(queryParameters(req, RANGE_PARAMETERS))));
    res.json({ success: true, pairs: rows.map((row) => ({ agent: row.agent, opponent: row.opponent, wins: Number(row.wins), losses: Number(row.losses), ties: Number(row.ties) })) });
  }] });

  route("/agents/ratings", { get: [requireCaller, async (req, res) => {
    const { rows } = await asCaller(req, (client) => client.query<{ agent: string; rating: number; lower: number; upper: number }>(
      "select agent, rating, lower, upper from app_public.agent_ratings($1, $2)", rangeOf(queryParameters(req, RANGE_PARAMETERS))));
    res.json({ success: true, ratings: rows });
  }] });
}
