// The floor multi_agent_log's export is held to: a server-side COPY of a plain
// table holding the very rows the export writes (what reading them once costs),
// and psql \copy of the SELECT the export ran before it read
// app_hidden.multi_agent_log_rows (a version ranking and a score lookup per
// version). Both run through psql, like the \copy the export section times.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type pg from "pg";

const run = promisify(execFile);
const round = (n: number, digits = 3) => Number(n.toFixed(digits));
const PLAIN_TABLE = "bench_plain_multi_agent_log";

// The previous release's SELECT (sql/functions/072_multi_agent_log_query.sql
// before issue 35) for the seed's three agents, the only ones the bench has.
const PREVIOUS_SELECT = `select p.id as request_id, app_hidden.export_time(p.created_at) as "timestamp",
       p.text as original_prompt, final.text as final_prompt, head.source as selected_agent,
       scores.syntax_score, scores.structure_score, scores.domain_score
  from app_public.prompts p
  left join app_public.best_heads head on head.prompt_id = p.id
  left join app_public.prompt_versions final on final.id = head.prompt_version_id
  left join (
    select ranked.prompt_id,
           max(ranked.total) filter (where ranked.source = 'syntax') as syntax_score,
           max(ranked.total) filter (where ranked.source = 'structure') as structure_score,
           max(ranked.total) filter (where ranked.source = 'domain') as domain_score
      from (select v.prompt_id, v.source, s.total,
                   row_number() over (partition by v.prompt_id, v.source order by v.created_at desc, v.id desc) as recency
              from app_public.prompt_versions v
              left join app_public.judge_scores s on s.prompt_version_id = v.id) ranked
     where ranked.recency = 1
     group by ranked.prompt_id
  ) scores on scores.prompt_id = p.id
 order by p.id`;

async function medianSeconds(url: string, command: string, env: Record<string, string> = {}): Promise<number> {
  const seconds: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    await run("psql", [url, "-X", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null", "-qc", command], { env: { ...process.env, ...env } });
    seconds.push((performance.now() - started) / 1000);
  }
  return seconds.sort((a, b) => a - b)[1];
}

/** The export's time (seconds, through the API) next to both baselines, on the user's rows. */
export async function benchPlainCopy(pool: pg.Pool, url: string, userId: string, exportSeconds: number) {
  const { rows } = await pool.query<{ sql: string }>("select app_hidden.multi_agent_log_query(false) as sql");
  await pool.query(`drop table if exists ${PLAIN_TABLE}`);
  // As the owner, whom RLS does not filter: the user's prompts are picked by hand.
  await pool.query(`create table ${PLAIN_TABLE} as select q.* from (${rows[0].sql}) q
    where q.request_id in (select p.id from app_public.prompts p where p.user_id = ${BigInt(userId)}) order by q.request_id`);
  await pool.query(`vacuum analyze ${PLAIN_TABLE}`);
  try {
    const plain = await medianSeconds(url, `copy ${PLAIN_TABLE} to stdout with (format csv, header)`);
    const previous = await medianSeconds(url, `\\copy (${PREVIOUS_SELECT.replace(/\s+/g, " ")}) to '/dev/null' with (format csv, header)`,
      { PGOPTIONS: `-c role=app_user -c jwt.claims.user_id=${userId}` });
    return {
      plain_table_copy_s: round(plain),
      previous_select_psql_copy_s: round(previous),
      export_to_plain_copy: round(exportSeconds / plain, 2),
      previous_select_to_plain_copy: round(previous / plain, 2),
    };
  } finally {
    await pool.query(`drop table if exists ${PLAIN_TABLE}`);
  }
}

/** Section 1's table of these figures, for bench/RESULTS.md. */
export function plainCopyMarkdown(sizes: { prompts: number; export: { api_s: number }; plain_copy: Awaited<ReturnType<typeof benchPlainCopy>> }[]): string[] {
  return [
    "The same export against a server-side COPY of a plain table holding its rows, and psql \\copy of the SELECT it ran before it read app_hidden.multi_agent_log_rows:", "",
    "| prompts | export (s) | plain table COPY (s) | previous SELECT \\copy (s) | export / plain | previous / plain |", "| --- | --- | --- | --- | --- | --- |",
    ...sizes.map((s) => `| ${s.prompts} | ${s.export.api_s} | ${s.plain_copy.plain_table_copy_s} | ${s.plain_copy.previous_select_psql_copy_s} | ${s.plain_copy.export_to_plain_copy} | ${s.plain_copy.previous_select_to_plain_copy} |`), "",
  ];
}
