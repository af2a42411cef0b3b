// agent_effectiveness reads per-(user, agent) counters that triggers maintain.
// This drives random writes (inserts, updates, deletes, source changes, best-head
// moves, whole runs through record_run) and after every step compares each column of the view, for each user
// and for an admin, with a plain recomputation of the seed's algorithm (and of the win rate's Wilson interval); then
// many connections write at once, committing and rolling back, and the view and
// the exports' stale flags are compared with what the committed writes imply.
import { beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import pg from "pg";
import { wilson } from "./analytics/oracle.ts";
import { createUser, useTestDatabase } from "./support/db.ts";

const db = useTestDatabase();
const AGENTS = ["domain", "structure", "syntax"];
const CRITERIA = ["clarity", "specificity", "actionability", "structure", "context_use"];
let users: string[];
let admin: string;

beforeAll(async () => {
  users = [await createUser(db.pool), await createUser(db.pool)];
  admin = await createUser(db.pool, { admin: true });
});

interface Version { id: string; prompt_id: string; user_id: string; source: string }
interface Score { prompt_version_id: string; total: string }
interface Head { prompt_version_id: string }
interface Effectiveness { wins: number; total: number; win_rate: number; avg_score: number; scored: number }

/** The seed's per-version loop, over plain rows: total, wins, win_rate, avg_score per agent. */
function recompute(versions: Version[], scores: Score[], heads: Head[]): Record<string, Effectiveness> {
  const scoreOf = new Map(scores.map((s) => [s.prompt_version_id, Number(s.total)]));
  const winners = new Set(heads.map((h) => h.prompt_version_id));
  const stats: Record<string, { wins: number; total: number; scores: number[] }> = {};
  for (const agent of AGENTS) stats[agent] = { wins: 0, total: 0, scores: [] };
  for (const version of versions) {
    const agent = stats[version.source];
    agent.total += 1;
    if (scoreOf.has(version.id)) agent.scores.push(scoreOf.get(version.id)!);
    if (winners.has(version.id)) agent.wins += 1;
  }
  return Object.fromEntries(Object.entries(stats).map(([name, s]) => [name, {
    wins: s.wins,
    total: s.total,
    win_rate: s.total > 0 ? s.wins / s.total : 0,
    avg_score: s.scores.length ? s.scores.reduce((a, b) => a + b, 0) / s.scores.length : 0,
    scored: s.scores.length,
  }]));
}

const criterion = fc.integer({ min: 0, max: 100 }).map((n) => n / 10);
const operation = fc.oneof(
  fc.record({ op: fc.constant("prompt" as const), user: fc.nat(1) }),
  fc.record({ op: fc.constant("version" as const), pick: fc.nat(), agent: fc.constantFrom(...AGENTS) }),
  fc.record({ op: fc.constant("score" as const), pick: fc.nat(), values: fc.array(criterion, { minLength: 5, maxLength: 5 }) }),
  fc.record({ op: fc.constant("rescore" as const), pick: fc.nat(), value: criterion }),
  fc.record({ op: fc.constant("unscore" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("head" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("unhead" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("resource" as const), pick: fc.nat(), agent: fc.constantFrom(...AGENTS) }),
  fc.record({ op: fc.constant("dropVersion" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("dropPrompt" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("bulk" as const), user: fc.nat(1), prompts: fc.integer({ min: 1, max: 4 }) }),
  // recordRun: a new prompt, or one of the user's (whose best head it may move), with versions, scores and a best head.
  fc.record({
    op: fc.constant("run" as const), user: fc.nat(1), onExisting: fc.boolean(), pick: fc.nat(), best: fc.option(fc.nat(2)),
    versions: fc.array(fc.record({ agent: fc.constantFrom(...AGENTS), scores: fc.option(criterion) }), { minLength: 1, maxLength: 3 }),
  }),
  // The owner's maintenance: one statement over every user's rows.
  fc.record({ op: fc.constant("ownerResource" as const), agent: fc.constantFrom(...AGENTS), skip: fc.nat(2) }),
);
type Operation = typeof operation extends fc.Arbitrary<infer T> ? T : never;

async function as(client: pg.ClientBase, userId: string, role: string, sql: string, params: unknown[] = []) {
  await client.query("select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true)", [role, userId]);
  try {
    return await client.query(sql, params);
  } finally {
    await client.query("reset role");
  }
}

async function pick<T extends { user_id: string }>(client: pg.PoolClient, sql: string, index: number): Promise<T | undefined> {
  const { rows } = await client.query<T>(sql);
  return rows.length ? rows[index % rows.length] : undefined;
}

/** Applies one random write as the user who owns the row it touches. */
async function apply(client: pg.PoolClient, step: Operation): Promise<void> {
  const version = () => pick<Version>(client, "select id, prompt_id, user_id, source from app_public.prompt_versions order by id", "pick" in step ? step.pick : 0);
  switch (step.op) {
    case "prompt":
      await as(client, users[step.user], "app_user", "insert into app_public.prompts (text) values ('p')");
      return;
    case "bulk":
      await client.query("select app_private.generate_demo($1, $2)", [users[step.user], step.prompts]);
      return;
    case "run": {
      const existing = step.onExisting
        ? await pick<{ id: string; user_id: string }>(client, `select id, user_id from app_public.prompts where user_id = ${Number(users[step.user])} order by id`, step.pick)
        : undefined;
      await as(client, users[step.user], "app_user", "select app_public.record_run($1)", [JSON.stringify(aRun(step, existing?.id))]);
      return;
    }
    case "ownerResource":
      await client.query("update app_public.prompt_versions set source = $1 where id % 3 <> $2", [step.agent, step.skip]);
      return;
    case "version": {
      const prompt = await pick<{ id: string; user_id: string }>(client, "select id, user_id from app_public.prompts order by id", step.pick);
      if (prompt) await as(client, prompt.user_id, "app_user",
        "insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'v', $2)", [prompt.id, step.agent]);
      return;
    }
    case "dropPrompt": {
      const prompt = await pick<{ id: string; user_id: string }>(client, "select id, user_id from app_public.prompts order by id", step.pick);
      if (prompt) await as(client, prompt.user_id, "app_user", "delete from app_public.prompts where id = $1", [prompt.id]);
      return;
    }
  }
  const v = await version();
  if (!v) return;
  const run = (sql: string, params: unknown[]) => as(client, v.user_id, "app_user", sql, params);
  switch (step.op) {
    case "score":
      await run(`insert into app_public.judge_scores (prompt_version_id, clarity, specificity, actionability, structure, context_use)
                 values ($1, $2, $3, $4, $5, $6) on conflict (prompt_version_id) do nothing`, [v.id, ...step.values]);
      break;
    case "rescore":
      await run("update app_public.judge_scores set clarity = $2 where prompt_version_id = $1", [v.id, step.value]);
      break;
    case "unscore":
      await run("delete from app_public.judge_scores where prompt_version_id = $1", [v.id]);
      break;
    case "head":
      await run("select app_public.set_best_head($1)", [v.id]);
      break;
    case "unhead":
      await run("delete from app_public.best_heads where prompt_id = $1", [v.prompt_id]);
      break;
    case "resource":
      await run("update app_public.prompt_versions set source = $2 where id = $1", [v.id, step.agent]);
      break;
    case "dropVersion":
      await run("delete from app_public.prompt_versions where id = $1", [v.id]);
      break;
  }
}

/** A run for record_run: each version's score is the same value on every criterion. */
function aRun(spec: { versions: { agent: string; scores: number | null }[]; best: number | null }, promptId?: string) {
  const versions = spec.versions.map(({ agent, scores }) => ({
    agent, text: "v", scores: scores === null ? null : Object.fromEntries(CRITERIA.map((c) => [c, scores])),
  }));
  return { ...(promptId ? { prompt_id: Number(promptId) } : { prompt: "p" }), versions, best_version: spec.best === null ? null : spec.best % versions.length };
}

async function expectViewMatches(client: pg.PoolClient, viewedUsers = users) {
  const versions = (await client.query<Version>("select id, prompt_id, user_id, source from app_public.prompt_versions")).rows;
  const scores = (await client.query<Score & { user_id: string }>("select prompt_version_id, total, user_id from app_public.judge_scores")).rows;
  const heads = (await client.query<Head & { user_id: string }>("select prompt_version_id, user_id from app_public.best_heads")).rows;
  const viewers = [...viewedUsers.map((id) => ({ id, role: "app_user", mine: (row: { user_id: string }) => row.user_id === id })),
    { id: admin, role: "app_admin", mine: () => true }];
  for (const viewer of viewers) {
    const expected = recompute(versions.filter(viewer.mine), scores.filter(viewer.mine), heads.filter(viewer.mine));
    const { rows } = await as(client, viewer.id, viewer.role, "select * from app_public.agent_effectiveness");
    expect(rows.map((r) => r.agent)).toEqual(AGENTS);
    for (const row of rows) {
      const want = expected[row.agent];
      expect({ wins: Number(row.wins), total: Number(row.total), scored: Number(row.scored) })
        .toEqual({ wins: want.wins, total: want.total, scored: want.scored });
      expect(row.win_rate).toBeCloseTo(want.win_rate, 9);
      expect(row.avg_score).toBeCloseTo(want.avg_score, 9);
      const [lower, upper] = wilson(want.wins, want.total);
      expect(row.win_rate_lower).toBeCloseTo(lower, 9);
      expect(row.win_rate_upper).toBeCloseTo(upper, 9);
    }
  }
}

describe("agent_effectiveness", () => {
  it("matches a recomputation from the rows after every random write", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 25 }), async (steps) => {
        const client = await db.pool.connect();
        try {
          await client.query("begin");
          for (const step of steps) {
            await apply(client, step);
            await expectViewMatches(client);
          }
        } finally {
          await client.query("rollback");
          client.release();
        }
      }),
      { numRuns: 40 },
    );
  });

  it("shows every registered agent, with zeros (and a win rate anywhere in [0, 1]) when it has no versions", async () => {
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      await client.query("insert into app_public.agents (name, description) values ('tone', 'Adjusts tone.')");
      const { rows } = await as(client, users[0], "app_user", "select * from app_public.agent_effectiveness where agent = 'tone'");
      expect(rows).toEqual([{ agent: "tone", wins: "0", total: "0", win_rate: 0, avg_score: 0, scored: "0", win_rate_lower: 0, win_rate_upper: 1 }]);
    } finally {
      await client.query("rollback");
      client.release();
    }
  });
});

/** A random transaction of one user: new prompts with versions, scores and a best head, or changes to existing rows. */
async function randomTransaction(client: pg.Client, userId: string, random: () => number): Promise<boolean> {
  const pause = () => new Promise((resolve) => setTimeout(resolve, random() * 3));
  const agent = () => AGENTS[Math.floor(random() * AGENTS.length)];
  const value = () => Math.round(random() * 100) / 10;
  let changed = false;
  const run = async (sql: string, params: unknown[] = []) => {
    const result = await client.query(sql, params);
    changed ||= (result.rowCount ?? 0) > 0;
    await pause();
    return result;
  };
  await client.query("begin");
  try {
    await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [userId]);
    const existing = async () => (await client.query<{ id: string; prompt_id: string }>(
      "select id, prompt_id from app_public.prompt_versions order by random() limit 1")).rows[0];
    const kind = random();
    if (kind < 0.15) {
      // recordRun, on a new prompt or on one of the user's, whose best head it may move.
      const mine = random() < 0.5 ? (await client.query<{ id: string }>("select id from app_public.prompts order by random() limit 1")).rows[0] : undefined;
      const versions = Array.from({ length: 1 + Math.floor(random() * 3) }, () => ({ agent: agent(), scores: random() < 0.8 ? value() : null }));
      await run("select app_public.record_run($1)", [JSON.stringify(aRun({ versions, best: random() < 0.7 ? Math.floor(random() * 3) : null }, mine?.id))]);
    } else if (kind < 0.5) {
      const prompt = (await run("insert into app_public.prompts (text) values ('p') returning id")).rows[0].id;
      const versions = [];
      for (let i = 0; i < 1 + Math.floor(random() * 3); i++) {
        const id = (await run("insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'v', $2) returning id", [prompt, agent()])).rows[0].id;
        if (random() < 0.8) {
          await run(`insert into app_public.judge_scores (prompt_version_id, clarity, specificity, actionability, structure, context_use)
                     values ($1, $2, $3, $4, $5, $6)`, [id, value(), value(), value(), value(), value()]);
        }
        versions.push(id);
      }
      if (random() < 0.7) await run("select app_public.set_best_head($1)", [versions[Math.floor(random() * versions.length)]]);
    } else {
      const version = await existing();
      if (version) {
        if (kind < 0.6) await run("update app_public.judge_scores set clarity = $2 where prompt_version_id = $1", [version.id, value()]);
        else if (kind < 0.7) await run("update app_public.prompt_versions set source = $2 where id = $1", [version.id, agent()]);
        else if (kind < 0.8) await run("select app_public.set_best_head($1)", [version.id]);
        else if (kind < 0.9) await run("delete from app_public.prompt_versions where id = $1", [version.id]);
        else await run("delete from app_public.prompts where id = $1", [version.prompt_id]);
      }
    }
    if (random() < 0.2) {
      await client.query("rollback");
      return false;
    }
    await client.query("commit");
    return changed;
  } catch (error) {
    // Another writer deleted the row this one referred to, or two writers took
    // the same rows in opposite orders (a deadlock, over data rows, never over
    // counters): the transaction stores nothing.
    if (!["23503", "PRNFD", "40P01"].includes((error as { code?: string }).code ?? "")) throw error;
    await client.query("rollback");
    return false;
  }
}

/** A seeded generator, so a failing run can be repeated. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

async function dataVersion(client: pg.ClientBase, userId: string, role: string): Promise<string> {
  return (await as(client, userId, role, "select app_hidden.current_data_version()::text as v")).rows[0].v;
}

async function isStale(client: pg.ClientBase, userId: string, role: string, dataVersionSeen: string, global: boolean): Promise<boolean> {
  const { rows } = await as(client, userId, role,
    "select app_public.exports_stale(jsonb_populate_record(null::app_public.exports, $1)) as stale",
    [{ user_id: userId, data_version: dataVersionSeen, is_global: global }]);
  return rows[0].stale;
}

describe("agent_effectiveness and stale flags under concurrent writers", () => {
  const CONNECTIONS = 10;
  const TRANSACTIONS_EACH = 25;

  async function writeConcurrently(writerUsers: string[], idleUsers: string[], seed: number) {
    const everyone = [...new Set([...writerUsers, ...idleUsers])];
    const viewer = await createUser(db.pool, { admin: true });
    const reader = await db.pool.connect();
    const before = new Map<string, string>();
    let globalBefore: string;
    try {
      await reader.query("begin");
      for (const user of everyone) before.set(user, await dataVersion(reader, user, "app_user"));
      globalBefore = await dataVersion(reader, viewer, "app_admin");
    } finally {
      await reader.query("rollback");
      reader.release();
    }
    const changed = new Set<string>();
    await Promise.all(Array.from({ length: CONNECTIONS }, async (_, i) => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        const random = seeded(seed + i);
        const userId = writerUsers[i % writerUsers.length];
        for (let t = 0; t < TRANSACTIONS_EACH; t++) {
          if (await randomTransaction(client, userId, random)) changed.add(userId);
        }
      } finally {
        await client.end();
      }
    }));
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      await expectViewMatches(client, everyone);
      for (const user of everyone) {
        expect({ user, stale: await isStale(client, user, "app_user", before.get(user)!, false) })
          .toEqual({ user, stale: changed.has(user) });
        const now = await dataVersion(client, user, "app_user");
        expect({ user, stale: await isStale(client, user, "app_user", now, false) }).toEqual({ user, stale: false });
      }
      expect(await isStale(client, viewer, "app_admin", globalBefore, true)).toBe(changed.size > 0);
      const globalNow = await dataVersion(client, viewer, "app_admin");
      expect(await isStale(client, viewer, "app_admin", globalNow, true)).toBe(false);
    } finally {
      await client.query("rollback");
      client.release();
    }
    return changed;
  }

  it("stays exact when ten connections write as one user at once, each on a counter slot of its own", async () => {
    const busy = await createUser(db.pool);
    const idle = await createUser(db.pool);
    const changed = await writeConcurrently([busy], [idle], 1);
    expect(changed).toEqual(new Set([busy]));
    // The writers overlapped and took different slots rather than queueing on one row.
    const { rows } = await db.pool.query("select count(distinct slot)::int as slots from app_hidden.data_versions where user_id = $1", [busy]);
    expect(rows[0].slots).toBeGreaterThan(1);
  });

  it("stays exact when ten connections write as many users at once", async () => {
    const writers = await Promise.all(Array.from({ length: 5 }, () => createUser(db.pool)));
    const idle = await createUser(db.pool);
    await writeConcurrently(writers, [idle], 100);
  });

  it("moves the data version once per committed transaction, again after a rolled-back savepoint, and in every later transaction", async () => {
    const user = await createUser(db.pool);
    const client = await db.pool.connect();
    const version = async () => {
      await client.query("begin");
      try {
        return await dataVersion(client, user, "app_user");
      } finally {
        await client.query("rollback");
      }
    };
    const writeAs = async (statements: string[]) => {
      await client.query("begin");
      await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [user]);
      for (const statement of statements) await client.query(statement);
      await client.query("commit");
    };
    try {
      const start = await version();
      await writeAs(["savepoint a", "insert into app_public.prompts (text) values ('undone')", "rollback to savepoint a",
        "insert into app_public.prompts (text) values ('kept')"]);
      const afterSavepoint = await version();
      expect(afterSavepoint).not.toBe(start);
      await writeAs(["update app_public.prompts set text = 'edited'"]);
      const afterSecond = await version();
      expect(afterSecond).not.toBe(afterSavepoint);
      // Statements that change nothing leave the version where it was.
      await writeAs(["update app_public.prompts set text = 'x' where false"]);
      expect(await version()).toBe(afterSecond);
    } finally {
      client.release();
    }
  });

  it("stays exact after an owner's statement over several users' rows (a slot of each)", async () => {
    const owners = [await createUser(db.pool), await createUser(db.pool)];
    for (const user of owners) await db.pool.query("select app_private.generate_demo($1, 3)", [user]);
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      const { rows } = await client.query("update app_public.prompt_versions set source = 'domain' where user_id = any ($1) and source <> 'domain' returning user_id", [owners]);
      expect(new Set(rows.map((r) => r.user_id))).toEqual(new Set(owners));
      await expectViewMatches(client, owners);
    } finally {
      await client.query("rollback");
      client.release();
    }
  });
});
