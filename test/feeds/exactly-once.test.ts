// Exactly once: applying a feed's runs 1..N in order (upsert by key, delete the
// deleted keys) gives the owner's rows as the database has them, in every
// format, through out-of-order commits (a transaction open across a run, of
// the owner and of another user), updates, deletes and concurrent writers.
// The database side is recomputed here with plain queries, not feed_parts.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { asOwner, createFeed, manifestOf, type Owner, runFeed, warehouse } from "./support.ts";

const db = useTestDatabase();
let dir: string;
let owner: Owner;
let other: Owner;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "prompter-feeds-"));
  owner = { role: "app_user", userId: await createUser(db.pool) };
  other = { role: "app_user", userId: await createUser(db.pool) };
  await db.pool.query("select app_private.generate_demo($1, 30)", [owner.userId]);
  await db.pool.query("select app_private.generate_demo($1, 10)", [other.userId]);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const RUN = (prompt: string) => ({
  prompt,
  versions: ["syntax", "structure", "domain"].map((agent, i) => ({
    agent,
    text: `${agent}: ${prompt}`,
    scores: { clarity: i + 1, specificity: 5, actionability: 5, structure: 5, context_use: 5.5 },
  })),
  best_version: 1,
});

/** What each kind's rows are, per key, recomputed from the tables (as the owner would see them). */
const ORACLES: Record<string, { key: string; sql: string; value: (row: Record<string, unknown>) => string }> = {
  prompt_versions: {
    key: "id",
    sql: "select v.id::text as key, v.text || '|' || v.source as value from app_public.prompt_versions v where v.user_id = $1",
    value: (row) => `${row.text}|${row.source}`,
  },
  judge_scores: {
    key: "id",
    sql: "select s.id::text as key, (s.clarity + s.specificity + s.actionability + s.structure + s.context_use)::float8::text as value from app_public.judge_scores s where s.user_id = $1",
    value: (row) => String(Number(row.total)),
  },
  multi_agent_log: {
    key: "request_id",
    sql: `select p.id::text as key,
                 coalesce(f.text, '') || '|' || coalesce((select s.total::float8::text from app_public.prompt_versions v
                   left join app_public.judge_scores s on s.prompt_version_id = v.id
                  where v.prompt_id = p.id and v.source = 'syntax' order by v.created_at desc, v.id desc limit 1), '') as value
            from app_public.prompts p
            left join app_public.best_heads h on h.prompt_id = p.id
            left join app_public.prompt_versions f on f.id = h.prompt_version_id
           where p.user_id = $1`,
    value: (row) => `${row.final_prompt ?? ""}|${row.syntax_score === null || row.syntax_score === "" ? "" : Number(row.syntax_score)}`,
  },
  prompts: {
    key: "id",
    sql: "select p.id::text as key, p.text as value from app_public.prompts p where p.user_id = $1",
    value: (row) => String(row.text),
  },
};

async function expected(kind: string, userId: string): Promise<Map<string, string>> {
  const { rows } = await db.pool.query<{ key: string; value: string }>(ORACLES[kind].sql, [userId]);
  return new Map(rows.map((row) => [row.key, row.value]));
}

async function applied(feedId: number, runs: number, kind: string): Promise<Map<string, string>> {
  const oracle = ORACLES[kind];
  const rows = await warehouse(dir, feedId, runs, oracle.key);
  return new Map(rows.map((row) => [String(row[oracle.key]), oracle.value(row)]));
}

/** The keys a run's data file holds, read by hand (not DuckDB), for the exactly-once counts. */
async function keysIn(feedId: number, run: number, kind: string): Promise<string[]> {
  const manifest = await manifestOf(dir, feedId, run);
  const file = path.join(dir, "feeds", String(feedId), String(run), manifest.files[0].name);
  const data = await readFile(file);
  const text = (file.endsWith(".gz") ? gunzipSync(data) : data).toString("utf8");
  const key = ORACLES[kind].key;
  if (manifest.format === "jsonl") return text.split("\n").filter(Boolean).map((line) => String(JSON.parse(line)[key]));
  return text.split("\n").slice(1).filter(Boolean).map((line) => line.split(",")[0]);
}

async function recordRun(client: pg.PoolClient, prompt: string): Promise<string> {
  const { rows } = await client.query<{ result: { prompt_id: number } }>("select app_public.record_run($1) as result", [RUN(prompt)]);
  return String(rows[0].result.prompt_id);
}

describe.each([
  { kind: "prompt_versions", format: "csv", options: {} },
  { kind: "judge_scores", format: "jsonl", options: { gzip: true } },
  { kind: "multi_agent_log", format: "parquet", options: {} },
  { kind: "prompts", format: "jsonl", options: {} },
])("a $kind feed in $format", ({ kind, format, options }) => {
  it("applied run by run equals the database, with late commits in the next run exactly once", async () => {
    const feedId = await createFeed(db.pool, owner, { kind, format, options });
    expect(await runFeed(db.pool, owner, feedId, dir)).toBe(1);
    expect(await applied(feedId, 1, kind)).toEqual(await expected(kind, owner.userId));

    // Two transactions that start writing before run 2 and commit after it.
    const late = await db.pool.connect();
    const lateOther = await db.pool.connect();
    try {
      await late.query("begin");
      await late.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [owner.userId]);
      const latePrompt = await recordRun(late, `late ${kind}`);
      await lateOther.query("begin");
      await lateOther.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [other.userId]);
      await recordRun(lateOther, `late other ${kind}`);

      // Committed before run 2: an update of a score, a deleted prompt, a new best head.
      await asOwner(db.pool, owner, async (client) => {
        // Values of this test's own, so that each test changes something.
        await client.query(
          "update app_public.judge_scores set clarity = $2 where id = (select min(id) from app_public.judge_scores where user_id = $1)",
          [owner.userId, (feedId % 9) + 0.25],
        );
        await client.query("update app_public.prompts set text = $2 where id = (select min(id) from app_public.prompts where user_id = $1)", [
          owner.userId,
          `edited for feed ${feedId}`,
        ]);
        await client.query("delete from app_public.prompts where id = (select max(id) from app_public.prompts where user_id = $1 and text like 'Write%')", [owner.userId]);
        await client.query(
          `select app_public.set_best_head(v.id) from app_public.prompt_versions v
            where v.prompt_id = (select min(id) from app_public.prompts where user_id = $1) and v.source = $2`,
          [owner.userId, ["syntax", "structure", "domain"][feedId % 3]],
        );
        await recordRun(client, `early ${kind}`);
      });
      expect(await runFeed(db.pool, owner, feedId, dir)).toBe(2);
      // The late transactions' rows are invisible here too, as to run 2.
      expect(await applied(feedId, 2, kind)).toEqual(await expected(kind, owner.userId));

      await late.query("commit");
      await lateOther.query("commit");
      expect(await runFeed(db.pool, owner, feedId, dir)).toBe(3);
      expect(await runFeed(db.pool, owner, feedId, dir)).toBe(4);
      expect(await applied(feedId, 4, kind)).toEqual(await expected(kind, owner.userId));

      // The late prompt's rows are in run 3 and in no other incremental run.
      const { rows } = await db.pool.query<{ key: string }>(
        kind === "prompts" || kind === "multi_agent_log"
          ? "select $1::text as key"
          : kind === "prompt_versions"
            ? "select id::text as key from app_public.prompt_versions where prompt_id = $1"
            : "select s.id::text as key from app_public.judge_scores s join app_public.prompt_versions v on v.id = s.prompt_version_id where v.prompt_id = $1",
        [latePrompt],
      );
      const lateKeys = rows.map((row) => row.key).sort();
      if (format !== "parquet") {
        for (const run of [2, 3, 4]) {
          const keys = await keysIn(feedId, run, kind);
          expect(keys.filter((key) => lateKeys.includes(key)).sort(), `run ${run}`).toEqual(run === 3 ? lateKeys : []);
          expect(new Set(keys).size, `run ${run} holds each key once`).toBe(keys.length);
        }
      }
      // Nothing of the other user's.
      const { rows: others } = await db.pool.query<{ key: string }>(
        "select id::text as key from app_public.prompts where user_id = $1",
        [other.userId],
      );
      const applied4 = await applied(feedId, 4, kind);
      if (kind === "prompts" || kind === "multi_agent_log") for (const { key } of others) expect(applied4.has(key)).toBe(false);
      const run4 = await manifestOf(dir, feedId, 4);
      expect(run4.files.map((file) => file.rows)).toEqual([0, 0]);
    } finally {
      await late.query("rollback").catch(() => {});
      await lateOther.query("rollback").catch(() => {});
      late.release();
      lateOther.release();
    }
  });
});
