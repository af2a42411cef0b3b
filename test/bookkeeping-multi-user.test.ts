// The bookkeeping triggers (sql/functions/030_track_changes.sql, 140_counter_slot.sql)
// when ONE statement writes rows of several users, as the owner's maintenance
// does (insert ... select over users, updates and deletes across users): after
// every statement, app_hidden.agent_stats must equal a recount from the tables
// themselves, and the data version of every user the statement touched, and of
// no other, must have moved.
import { beforeAll, describe, expect, it } from "vitest";
import { createUser, useTestDatabase } from "./support/db.ts";

const db = useTestDatabase();
let users: string[];
let bystander: string;

/** agent_stats summed over its slots, per (user, agent), leaving out all-zero counts. */
async function bookkept() {
  const { rows } = await db.pool.query(
    `select user_id::text, agent, sum(total)::int as total, sum(scored)::int as scored, sum(score_sum)::float8 as score_sum, sum(wins)::int as wins
       from app_hidden.agent_stats group by 1, 2
     having sum(total) <> 0 or sum(scored) <> 0 or sum(score_sum) <> 0 or sum(wins) <> 0
      order by 1, 2`);
  return rows;
}

/** The same figures counted from the rows, independently of the triggers. */
async function recounted() {
  const { rows } = await db.pool.query(
    `with per_row as (
       select user_id, source as agent, 1 as total, 0 as scored, 0::numeric as score_sum, 0 as wins from app_public.prompt_versions
       union all select user_id, source, 0, 1, total, 0 from app_public.judge_scores
       union all select user_id, source, 0, 0, 0, 1 from app_public.best_heads)
     select user_id::text, agent, sum(total)::int as total, sum(scored)::int as scored, sum(score_sum)::float8 as score_sum, sum(wins)::int as wins
       from per_row group by 1, 2 order by 1, 2`);
  return rows;
}

async function dataVersions(): Promise<Record<string, number>> {
  const { rows } = await db.pool.query("select user_id::text, sum(version)::int as version from app_hidden.data_versions group by 1");
  return Object.fromEntries(rows.map((row) => [row.user_id, row.version]));
}

/**
 * Runs one statement as the owner, in a transaction of its own, and checks the
 * bookkeeping: the counts match the recount, and exactly `touched` users' data versions moved.
 */
async function oneStatement(sql: string, touched: string[], parameters: unknown[] = [users]) {
  const before = await dataVersions();
  const { rowCount } = await db.pool.query(sql, parameters);
  expect(rowCount).toBeGreaterThan(0);
  expect(await bookkept()).toEqual(await recounted());
  const after = await dataVersions();
  const moved = Object.keys(after).filter((user) => after[user] !== (before[user] ?? 0)).sort();
  expect(moved).toEqual([...touched].sort());
  for (const user of touched) expect(after[user]).toBeGreaterThan(before[user] ?? 0);
}

beforeAll(async () => {
  users = [await createUser(db.pool), await createUser(db.pool), await createUser(db.pool)];
  bystander = await createUser(db.pool);
  // The bystander has data of its own, which no statement below touches.
  await db.pool.query("select app_private.generate_demo($1, 2)", [bystander]);
});

describe("one statement, several users", () => {
  it("inserts, updates and deletes across users keep agent_stats equal to a recount and move exactly the touched users' data versions", async () => {
    // Prompts: the first user two, the others one each.
    await oneStatement(
      `insert into app_public.prompts (user_id, text)
       select u.id, 'prompt ' || n || ' of ' || u.id from app_public.users u, generate_series(1, 2) n
        where u.id = any ($1) and (n = 1 or u.id = ($1::bigint[])[1])`, users);
    // Versions: a different set of agents for each user.
    await oneStatement(
      `insert into app_public.prompt_versions (prompt_id, user_id, text, source)
       select p.id, p.user_id, a.agent || ' version of ' || p.id, a.agent
         from app_public.prompts p
         join (values ('syntax', 0), ('structure', 0), ('domain', 0), ('syntax', 1), ('structure', 2)) a (agent, which)
           on which = 0 or p.user_id = ($1::bigint[])[which]
        where p.user_id = any ($1)`, users);
    // Scores: different figures per user and agent.
    await oneStatement(
      `insert into app_public.judge_scores (prompt_version_id, user_id, clarity, specificity, actionability, structure, context_use)
       select v.id, v.user_id, (v.id % 7) + 1, (v.user_id % 5) + 2, 3.5, length(v.source) % 10, 1
         from app_public.prompt_versions v where v.user_id = any ($1)`, users);
    // Best heads: each prompt's best-scored version.
    await oneStatement(
      `insert into app_public.best_heads (prompt_id, prompt_version_id, user_id)
       select distinct on (v.prompt_id) v.prompt_id, v.id, v.user_id
         from app_public.prompt_versions v join app_public.judge_scores s on s.prompt_version_id = v.id
        where v.user_id = any ($1) order by v.prompt_id, s.total desc, v.id`, users);

    const [first, second, third] = users;
    await oneStatement("update app_public.judge_scores set clarity = clarity + 0.5 where user_id = any ($1)", [first, third], [[first, third]]);
    // Each prompt's head moves to its lowest version, for every user at once.
    await oneStatement(
      `update app_public.best_heads b set prompt_version_id = (select min(v.id) from app_public.prompt_versions v where v.prompt_id = b.prompt_id)
        where b.user_id = any ($1) and b.prompt_version_id <> (select min(v.id) from app_public.prompt_versions v where v.prompt_id = b.prompt_id)`,
      await usersWhoseHeadMoves());
    // A version changing agent carries its score and crown along (cascades, statements of their own).
    await oneStatement("update app_public.prompt_versions set source = 'domain' where source = 'syntax' and user_id = any ($1)", [first, second], [[first, second]]);
    await oneStatement("update app_public.prompt_versions set text = text || ' (edited)' where user_id = any ($1)", users);
    await oneStatement("delete from app_public.judge_scores where user_id = any ($1) and source = 'structure'", [second, third], [[second, third]]);
    await oneStatement("delete from app_public.prompt_versions where user_id = any ($1) and source = 'domain'", users);
    await oneStatement("delete from app_public.prompts where user_id = any ($1)", [first, third], [[first, third]]);
  });
});

/** The users a statement moving every head to its prompt's lowest version will touch. */
async function usersWhoseHeadMoves(): Promise<string[]> {
  const { rows } = await db.pool.query(
    `select distinct b.user_id::text from app_public.best_heads b
      where b.user_id = any ($1) and b.prompt_version_id <> (select min(v.id) from app_public.prompt_versions v where v.prompt_id = b.prompt_id)`, [users]);
  expect(rows.length).toBeGreaterThan(1);
  return rows.map((row) => row.user_id);
}
