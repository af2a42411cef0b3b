// An independent recomputation of the analytics from the rows, in TypeScript:
// per-day effectiveness, head-to-head matches, Wilson intervals, and a textbook
// Bradley-Terry fit (Zermelo's / Hunter's MM iteration) with intervals from the
// Fisher information, taken with one agent as the reference and then centred.
import type pg from "pg";

export const AGENTS = ["domain", "structure", "syntax"];
export const CRITERIA = ["clarity", "specificity", "actionability", "structure", "context_use"] as const;

export interface Rows {
  prompts: { id: string; user_id: string; created_at: Date }[];
  versions: { id: string; prompt_id: string; user_id: string; source: string; created_at: Date }[];
  scores: ({ prompt_version_id: string; source: string; total: string } & Record<(typeof CRITERIA)[number], string>)[];
  heads: { prompt_version_id: string; source: string }[];
}

/** Every row, read as the owner (no RLS). */
export async function readRows(client: pg.ClientBase): Promise<Rows> {
  const q = async <T>(sql: string) => (await client.query(sql)).rows as T[];
  return {
    prompts: await q("select id, user_id, created_at from app_public.prompts"),
    versions: await q("select id, prompt_id, user_id, source, created_at from app_public.prompt_versions"),
    scores: await q("select prompt_version_id, source, total, clarity, specificity, actionability, structure, context_use from app_public.judge_scores"),
    heads: await q("select prompt_version_id, source from app_public.best_heads"),
  };
}

export const utcDay = (at: Date) => at.toISOString().slice(0, 10);
const inWindow = (day: string, from: string, to: string) => day >= from && day < to;

const Z = 1.959963984540054;
export function wilson(successes: number, trials: number): [number, number] {
  if (trials === 0) return [0, 1];
  const p = successes / trials;
  const centre = p + (Z * Z) / (2 * trials);
  const spread = Z * Math.sqrt((p * (1 - p)) / trials + (Z * Z) / (4 * trials * trials));
  const scale = 1 + (Z * Z) / trials;
  return [Math.max(0, (centre - spread) / scale), Math.min(1, (centre + spread) / scale)];
}

export interface Figures {
  wins: number; total: number; scored: number; win_rate: number; win_rate_lower: number; win_rate_upper: number;
  avg_score: number; avg_clarity: number; avg_specificity: number; avg_actionability: number; avg_structure: number; avg_context_use: number;
}

/** Per agent, the figures of the versions created in [from, to) (UTC days), as the seed's per-version loop would count them. */
export function effectiveness(rows: Rows, userIds: Set<string> | "all", from: string, to: string): Record<string, Figures> {
  const mine = (row: { user_id: string }) => userIds === "all" || userIds.has(row.user_id);
  const scoreOf = new Map(rows.scores.map((s) => [s.prompt_version_id, s]));
  const winners = new Set(rows.heads.map((h) => h.prompt_version_id));
  const result: Record<string, Figures> = {};
  for (const agent of AGENTS) {
    const versions = rows.versions.filter((v) => mine(v) && v.source === agent && inWindow(utcDay(v.created_at), from, to));
    const scores = versions.map((v) => scoreOf.get(v.id)).filter((s) => s !== undefined);
    const wins = versions.filter((v) => winners.has(v.id)).length;
    const mean = (pick: (s: Rows["scores"][number]) => string) => scores.length ? scores.reduce((sum, s) => sum + Number(pick(s)), 0) / scores.length : 0;
    const [lower, upper] = wilson(wins, versions.length);
    result[agent] = {
      wins, total: versions.length, scored: scores.length, win_rate: versions.length ? wins / versions.length : 0,
      win_rate_lower: lower, win_rate_upper: upper, avg_score: mean((s) => s.total), avg_clarity: mean((s) => s.clarity),
      avg_specificity: mean((s) => s.specificity), avg_actionability: mean((s) => s.actionability),
      avg_structure: mean((s) => s.structure), avg_context_use: mean((s) => s.context_use),
    };
  }
  return result;
}

export interface Pair { agent: string; opponent: string; wins: number; losses: number; ties: number }

/** Every two scored versions of one prompt by different agents, in prompts created in [from, to): a match. */
export function headToHead(rows: Rows, userIds: Set<string> | "all", from: string, to: string): Pair[] {
  const scoreOf = new Map(rows.scores.map((s) => [s.prompt_version_id, Number(s.total)]));
  const pairs = new Map<string, Pair>();
  for (const prompt of rows.prompts) {
    if (!(userIds === "all" || userIds.has(prompt.user_id)) || !inWindow(utcDay(prompt.created_at), from, to)) continue;
    const scored = rows.versions.filter((v) => v.prompt_id === prompt.id && scoreOf.has(v.id));
    for (const x of scored) {
      for (const y of scored) {
        if (x.source === y.source) continue;
        const key = `${x.source}/${y.source}`;
        const pair = pairs.get(key) ?? { agent: x.source, opponent: y.source, wins: 0, losses: 0, ties: 0 };
        const [a, b] = [scoreOf.get(x.id)!, scoreOf.get(y.id)!];
        if (a > b) pair.wins++; else if (a < b) pair.losses++; else pair.ties++;
        pairs.set(key, pair);
      }
    }
  }
  return [...pairs.values()].sort((p, q) => p.agent.localeCompare(q.agent) || p.opponent.localeCompare(q.opponent));
}

function invert(matrix: number[][]): number[][] {
  const n = matrix.length;
  const a = matrix.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r][col]) > Math.abs(a[pivot][col])) pivot = r;
    [a[col], a[pivot]] = [a[pivot], a[col]];
    const f = a[col][col];
    for (let c = 0; c < 2 * n; c++) a[col][c] /= f;
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const g = a[r][col];
      for (let c = 0; c < 2 * n; c++) a[r][c] -= g * a[col][c];
    }
  }
  return a.map((row) => row.slice(n));
}

export interface Rating { agent: string; rating: number; lower: number; upper: number }

/** Bradley-Terry by the MM iteration, ties as half wins, one virtual tie per pair of agents that played. */
export function ratings(pairs: Pair[]): Rating[] {
  const names = [...new Set(pairs.flatMap((p) => [p.agent, p.opponent]))].sort();
  const k = names.length;
  if (k < 2) return [];
  const n = names.map((_, i) => names.map((__, j) => (i === j ? 0 : 1)));
  const w = names.map(() => 0.5 * (k - 1));
  // Each ordered pair is listed both ways: take the agent's side of each.
  for (const pair of pairs) {
    const [i, j] = [names.indexOf(pair.agent), names.indexOf(pair.opponent)];
    n[i][j] += (pair.wins + pair.losses + pair.ties) / 2;
    n[j][i] += (pair.wins + pair.losses + pair.ties) / 2;
    w[i] += pair.wins + 0.5 * pair.ties;
  }
  let p = names.map(() => 1);
  for (let iteration = 0; iteration < 200_000; iteration++) {
    const next = p.map((pi, i) => w[i] / p.reduce((sum, pj, j) => (j === i ? sum : sum + n[i][j] / (pi + pj)), 0));
    const mean = Math.exp(next.reduce((sum, x) => sum + Math.log(x), 0) / k);
    const scaled = next.map((x) => x / mean);
    const change = Math.max(...scaled.map((x, i) => Math.abs(x - p[i]) / p[i]));
    p = scaled;
    if (change < 1e-14) break;
  }
  const theta = p.map(Math.log);
  // The information with the last agent as the reference (its theta fixed), inverted, then centred.
  const info = names.slice(0, -1).map((_, i) => names.slice(0, -1).map((__, j) => {
    const term = (a: number, b: number) => n[a][b] * p[a] * p[b] / (p[a] + p[b]) ** 2;
    return i === j ? names.reduce((sum, ___, m) => (m === i ? sum : sum + term(i, m)), 0) : -term(i, j);
  }));
  const reduced = invert(info);
  const full = names.map((_, i) => names.map((__, j) => (i < k - 1 && j < k - 1 ? reduced[i][j] : 0)));
  const centring = names.map((_, i) => names.map((__, j) => (i === j ? 1 : 0) - 1 / k));
  const variance = names.map((_, i) => {
    let v = 0;
    for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) v += centring[i][a] * full[a][b] * centring[i][b];
    return v;
  });
  const elo = 400 / Math.LN10;
  return names.map((agent, i) => ({
    agent, rating: 1000 + elo * theta[i],
    lower: 1000 + elo * (theta[i] - Z * Math.sqrt(variance[i])), upper: 1000 + elo * (theta[i] + Z * Math.sqrt(variance[i])),
  })).sort((a, b) => b.rating - a.rating || a.agent.localeCompare(b.agent));
}
