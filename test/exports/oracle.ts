// What an export should hold, recomputed in TypeScript from the tables' rows:
// plain selects without ORDER BY (as the database owner, so RLS hides nothing),
// then visibility, joins, "newest version" ranking, aggregates, ordering,
// timestamp format and Excel escaping written out here. Nothing in it reuses
// the SQL the worker copies from (app_hidden.export_parts), so a wrong column,
// a missing ORDER BY or a missing escape in that SQL makes the two differ.
import type pg from "pg";
import type { SignedIn } from "./support.ts";

const SEED_AGENTS = ["syntax", "structure", "domain"];
const KINDS = ["multi_agent_log", "prompt_versions", "judge_scores", "agent_effectiveness"] as const;

/** Every row of the tables an export reads, timestamps as microseconds since the epoch. */
interface Tables {
  agents: { name: string }[];
  prompts: { id: string; user_id: string; text: string; created_us: string }[];
  versions: {
    id: string;
    prompt_id: string;
    user_id: string;
    text: string;
    explanation: string | null;
    source: string;
    created_us: string;
  }[];
  scores: {
    id: string;
    prompt_version_id: string;
    user_id: string;
    source: string;
    clarity: string;
    specificity: string;
    actionability: string;
    structure: string;
    context_use: string;
    total: string;
    created_us: string;
  }[];
  heads: { prompt_id: string; prompt_version_id: string; user_id: string }[];
}

const MICROSECONDS = "(extract(epoch from created_at) * 1000000)::bigint::text as created_us";

async function readTables(pool: pg.Pool): Promise<Tables> {
  const read = async <T>(query: string) => (await pool.query(query)).rows as T[];
  return {
    agents: await read("select name from app_public.agents"),
    prompts: await read(`select id, user_id, text, ${MICROSECONDS} from app_public.prompts`),
    versions: await read(`select id, prompt_id, user_id, text, explanation, source, ${MICROSECONDS} from app_public.prompt_versions`),
    scores: await read(
      `select id, prompt_version_id, user_id, source, clarity::text, specificity::text, actionability::text,
              structure::text, context_use::text, total::text, ${MICROSECONDS} from app_public.judge_scores`,
    ),
    heads: await read("select prompt_id, prompt_version_id, user_id from app_public.best_heads"),
  };
}

/**
 * The rule this project documents (README, "Exports"; app_hidden.excel_safe):
 * a cell that starts with a tab or carriage return, or whose first character
 * other than space, tab, CR or LF is =, +, - or @, gets a leading apostrophe.
 */
export function excelSafe(cell: string): string {
  return /^[\t\r]|^[ \t\r\n]*[=+\-@]/.test(cell) ? `'${cell}` : cell;
}

/** ISO 8601 in UTC with microseconds, as every export writes timestamps. */
export function exportTime(microseconds: string): string {
  const us = BigInt(microseconds);
  const iso = new Date(Number(us / 1000n)).toISOString();
  return `${iso.slice(0, 19)}.${String(us % 1_000_000n).padStart(6, "0")}Z`;
}

/** A non-negative decimal with at most six decimals, as an integer count of millionths. */
function millionths(decimal: string): bigint {
  const [whole, fraction = ""] = decimal.split(".");
  if (fraction.length > 6) throw new Error(`more than six decimals: ${decimal}`);
  return BigInt(whole) * 1_000_000n + BigInt(fraction.padEnd(6, "0"));
}

/** How many base-10000 digits a positive value lies above the point (its "weight"), and its first such digit. */
function nbaseWeight(millionthsValue: bigint): { weight: number; first: bigint } {
  if (millionthsValue === 0n) return { weight: 0, first: 0n };
  let weight = 0;
  let scaled = millionthsValue;
  let unit = 1_000_000n; // the value is scaled / unit
  while (scaled / unit >= 10_000n) {
    unit *= 10_000n;
    weight++;
  }
  while (scaled / unit === 0n) {
    scaled *= 10_000n;
    weight--;
  }
  return { weight, first: scaled / unit };
}

/**
 * The mean as agent_effectiveness computes it: numeric division of the exact
 * sum by the count, to the scale PostgreSQL picks (select_div_scale: at least
 * 16 significant digits), rounded half away from zero, then read as float8.
 * Two roundings, so a plain float division can differ in the last digit.
 */
function numericMean(sumMillionths: bigint, count: number): string {
  const dividend = nbaseWeight(sumMillionths);
  const divisor = nbaseWeight(BigInt(count) * 1_000_000n);
  let quotientWeight = dividend.weight - divisor.weight;
  if (dividend.first <= divisor.first) quotientWeight--;
  const scale = Math.min(Math.max(16 - 4 * quotientWeight, 0), 1000);
  const denominator = 1_000_000n * BigInt(count);
  const numerator = sumMillionths * 10n ** BigInt(scale);
  let quotient = numerator / denominator;
  if (2n * (numerator % denominator) >= denominator) quotient++;
  const digits = quotient.toString().padStart(scale + 1, "0");
  return String(Number(`${digits.slice(0, digits.length - scale)}.${digits.slice(digits.length - scale)}`));
}

const byId = (a: { id: string }, b: { id: string }) => (BigInt(a.id) < BigInt(b.id) ? -1 : BigInt(a.id) > BigInt(b.id) ? 1 : 0);
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The export of `kind` the actor should get now: each file's rows (header first), by file name, in the zip's order. */
export async function expectedExport(
  pool: pg.Pool,
  actor: SignedIn,
  kind: string,
  options: { excel?: boolean } = {},
): Promise<Map<string, string[][]>> {
  const all = await readTables(pool);
  // RLS: a user reads their own rows, an admin everyone's.
  const visible = <T extends { user_id: string }>(rows: T[]) =>
    actor.role === "app_admin" ? rows : rows.filter((row) => row.user_id === String(actor.userId));
  const t: Tables = {
    agents: all.agents,
    prompts: visible(all.prompts),
    versions: visible(all.versions),
    scores: visible(all.scores),
    heads: visible(all.heads),
  };
  const text = options.excel ? excelSafe : (cell: string) => cell;
  const files = new Map<string, string[][]>();
  for (const part of KINDS) {
    if (kind === part || kind === "all") files.set(`${part}.csv`, recompute[part](t, text));
  }
  if (files.size === 0) throw new Error(`no such export kind: ${kind}`);
  return files;
}

type Cell = (value: string) => string;

const recompute: Record<(typeof KINDS)[number], (t: Tables, text: Cell) => string[][]> = {
  multi_agent_log(t, text) {
    const later = t.agents.map((agent) => agent.name).filter((name) => !SEED_AGENTS.includes(name)).sort(byName);
    const scoreAgents = [...SEED_AGENTS, ...later];
    const versionsById = new Map(t.versions.map((version) => [version.id, version]));
    const totals = new Map(t.scores.map((score) => [score.prompt_version_id, score.total]));
    const headOf = new Map(t.heads.map((head) => [head.prompt_id, versionsById.get(head.prompt_version_id)!]));
    const newer = (a: Tables["versions"][number], b: Tables["versions"][number]) =>
      BigInt(a.created_us) > BigInt(b.created_us) || (a.created_us === b.created_us && BigInt(a.id) > BigInt(b.id));
    const rows = [...t.prompts].sort(byId).map((prompt) => {
      const head = headOf.get(prompt.id);
      const scores = scoreAgents.map((agent) => {
        let newest: Tables["versions"][number] | undefined;
        for (const version of t.versions) {
          if (version.prompt_id === prompt.id && version.source === agent && (!newest || newer(version, newest))) newest = version;
        }
        return (newest && totals.get(newest.id)) ?? "";
      });
      return [
        prompt.id,
        exportTime(prompt.created_us),
        text(prompt.text),
        text(head?.text ?? ""),
        text(head?.source ?? ""),
        ...scores,
      ];
    });
    const header = ["request_id", "timestamp", "original_prompt", "final_prompt", "selected_agent", ...scoreAgents.map((a) => `${a}_score`)];
    return [header, ...rows];
  },

  prompt_versions(t, text) {
    return [
      ["id", "prompt_id", "user_id", "text", "explanation", "source", "created_at"],
      ...[...t.versions]
        .sort(byId)
        .map((v) => [v.id, v.prompt_id, v.user_id, text(v.text), text(v.explanation ?? ""), text(v.source), exportTime(v.created_us)]),
    ];
  },

  judge_scores(t, text) {
    return [
      ["id", "prompt_version_id", "user_id", "source", "clarity", "specificity", "actionability", "structure", "context_use", "total", "created_at"],
      ...[...t.scores]
        .sort(byId)
        .map((s) => [
          s.id, s.prompt_version_id, s.user_id, text(s.source), s.clarity, s.specificity,
          s.actionability, s.structure, s.context_use, s.total, exportTime(s.created_us),
        ]),
    ];
  },

  // Per agent (every registered one, by name): versions written, versions that
  // are their prompt's best head, their ratio, and the mean judge total.
  agent_effectiveness(t, text) {
    const sourceOf = new Map(t.versions.map((version) => [version.id, version.source]));
    const rows = t.agents
      .map((agent) => agent.name)
      .sort(byName)
      .map((agent) => {
        const total = t.versions.filter((version) => version.source === agent).length;
        const wins = t.heads.filter((head) => sourceOf.get(head.prompt_version_id) === agent).length;
        const scored = t.scores.filter((score) => score.source === agent);
        // Summed exactly (in millionths), as numeric does.
        const scoreSum = scored.reduce((sum, score) => sum + millionths(score.total), 0n);
        return [
          text(agent),
          String(wins),
          String(total),
          String(total ? wins / total : 0),
          scored.length ? numericMean(scoreSum, scored.length) : "0",
          String(scored.length),
        ];
      });
    return [["agent", "wins", "total", "win_rate", "avg_score", "scored"], ...rows];
  },
};
