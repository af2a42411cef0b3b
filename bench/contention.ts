import pg from "pg";
import { median, round } from "./harness.ts";

// Plain copies of the tables one write transaction touches: same columns, keys,
// indexes, checks and foreign keys, no RLS and no triggers.
export const PLAIN_COPIES = `
  drop schema if exists bench_plain cascade;
  create schema bench_plain;
  create table bench_plain.prompts (like app_public.prompts including all);
  alter table bench_plain.prompts add foreign key (user_id) references app_public.users on delete cascade;
  create table bench_plain.prompt_versions (like app_public.prompt_versions including all);
  alter table bench_plain.prompt_versions add foreign key (user_id, prompt_id) references bench_plain.prompts (user_id, id) on delete cascade,
    add foreign key (source) references app_public.agents (name);
  create table bench_plain.judge_scores (like app_public.judge_scores including all);
  alter table bench_plain.judge_scores add foreign key (user_id, prompt_version_id, source)
    references bench_plain.prompt_versions (user_id, id, source) on delete cascade on update cascade;`;

export type WriteMode = "bookkeeping" | "no_bookkeeping" | "plain_tables";
export const TRACKING_TRIGGERS = ["prompts", "prompt_versions", "judge_scores"]
  .map((table) => `app_public.${table} disable trigger _500_track_insert`);

/** 10 connections writing as one user for `seconds`: one prompt + one version + one score per transaction. */
export async function writeTransactions(url: string, userId: string, mode: WriteMode, seconds: number): Promise<number> {
  const schema = mode === "plain_tables" ? "bench_plain" : "app_public";
  // The plain copies have no defaults from the session and no trigger to copy the source.
  const owner = mode === "plain_tables" ? ", user_id" : "";
  const ownerValue = mode === "plain_tables" ? `, ${Number(userId)}` : "";
  const role = mode === "plain_tables" ? "" : "app_user";
  let transactions = 0;
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(Array.from({ length: 10 }, async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    while (Date.now() < deadline) {
      await client.query("begin");
      await client.query("select set_config('role', coalesce(nullif($1, ''), current_user), true), set_config('jwt.claims.user_id', $2, true)", [role, userId]);
      const prompt = (await client.query(`insert into ${schema}.prompts (text${owner}) values ('bench'${ownerValue}) returning id`)).rows[0].id;
      const version = (await client.query(
        `insert into ${schema}.prompt_versions (prompt_id, text, source${owner}) values ($1, 'better', 'syntax'${ownerValue}) returning id`, [prompt])).rows[0].id;
      await client.query(
        `insert into ${schema}.judge_scores (prompt_version_id, clarity, specificity, actionability, structure, context_use${owner}${owner ? ", source" : ""})
         values ($1, 5, 6, 7, 8, 9${ownerValue}${owner ? ", 'syntax'" : ""})`, [version]);
      await client.query("commit");
      transactions += 1;
    }
    await client.end();
  }));
  return transactions / seconds;
}

/** The three modes in turn, `rounds` times (so drift on a shared machine hits each alike); median tps of each. */
export async function benchContention(pool: pg.Pool, url: string, userId: string, rounds = 9, seconds = 3) {
  await pool.query(PLAIN_COPIES);
  const tps: Record<WriteMode, number[]> = { bookkeeping: [], no_bookkeeping: [], plain_tables: [] };
  const modes = Object.keys(tps) as WriteMode[];
  for (let round = 0; round < rounds; round++) {
    for (const mode of round % 2 === 0 ? modes : [...modes].reverse()) {
      if (mode === "no_bookkeeping") for (const statement of TRACKING_TRIGGERS) await pool.query(`alter table ${statement}`);
      try {
        tps[mode].push(await writeTransactions(url, userId, mode, seconds));
      } finally {
        if (mode === "no_bookkeeping") for (const statement of TRACKING_TRIGGERS) await pool.query(`alter table ${statement.replace("disable", "enable")}`);
      }
    }
  }
  await pool.query("drop schema bench_plain cascade");
  // Each round's modes ran back to back, at the speed the machine had then:
  // the ratios are taken per round, and their median reported.
  const ratioTo = (other: WriteMode) => median(tps.bookkeeping.map((bookkeeping, i) => bookkeeping / tps[other][i]));
  return {
    writers: 10, users: 1, seconds, rounds,
    bookkeeping_tps: round(median(tps.bookkeeping), 0),
    no_bookkeeping_tps: round(median(tps.no_bookkeeping), 0),
    plain_tables_tps: round(median(tps.plain_tables), 0),
    vs_no_bookkeeping: round(ratioTo("no_bookkeeping")),
    vs_plain_tables: round(ratioTo("plain_tables")),
  };
}
