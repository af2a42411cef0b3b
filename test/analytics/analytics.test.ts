// The per-day analytics (agent_effectiveness_between, _series, agent_head_to_head,
// agent_ratings) read counters that triggers keep. Random writes of several
// users (recordRun, single inserts, rescoring, new best heads, source changes,
// deletes, backdated versions and prompts, a deleted user) are compared after
// every step, for each user and an admin, over several windows, with a
// recomputation from the rows (./oracle.ts); then many connections write at once.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import pg from "pg";
import { actAs, asSuperuser, createUser, errorOf, useTestDatabase } from "../support/db.ts";
import { AGENTS, CRITERIA, effectiveness, headToHead, ratings, readRows, utcDay, type Rows } from "./oracle.ts";

const db = useTestDatabase();
let users: string[];
let admin: string;

beforeAll(async () => {
  users = [await createUser(db.pool), await createUser(db.pool)];
  admin = await createUser(db.pool, { admin: true });
});

const today = utcDay(new Date());
const addDays = (day: string, n: number) => utcDay(new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000));
// Backdated rows land on these days, some at the edges of a UTC day.
const PAST = [`${addDays(today, -1)}T23:59:59.999Z`, `${addDays(today, -2)}T00:00:00Z`, `${addDays(today, -9)}T12:00:00Z`];
const WINDOWS: [string, string][] = [
  [addDays(today, -30), addDays(today, 1)], [addDays(today, -1), today], [addDays(today, -2), addDays(today, -1)],
  [today, addDays(today, 1)], [addDays(today, -9), addDays(today, -2)], [today, today],
];

const criterion = fc.integer({ min: 0, max: 20 }).map((n) => n / 2);
const operation = fc.oneof(
  fc.record({ op: fc.constant("run" as const), user: fc.nat(1), onExisting: fc.boolean(), pick: fc.nat(), best: fc.option(fc.nat(2)),
    versions: fc.array(fc.record({ agent: fc.constantFrom(...AGENTS), scores: fc.option(criterion) }), { minLength: 1, maxLength: 3 }) }),
  fc.record({ op: fc.constant("version" as const), pick: fc.nat(), agent: fc.constantFrom(...AGENTS) }),
  fc.record({ op: fc.constant("score" as const), pick: fc.nat(), values: fc.array(criterion, { minLength: 5, maxLength: 5 }) }),
  fc.record({ op: fc.constant("rescore" as const), pick: fc.nat(), value: criterion }),
  fc.record({ op: fc.constant("unscore" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("head" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("unhead" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("resource" as const), pick: fc.nat(), agent: fc.constantFrom(...AGENTS) }),
  fc.record({ op: fc.constant("dropVersion" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("dropPrompt" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("bulk" as const), user: fc.nat(1), prompts: fc.integer({ min: 1, max: 3 }) }),
  // The owner's maintenance: backdating a version (and changing its agent with it), or a prompt.
  fc.record({ op: fc.constant("backdateVersion" as const), pick: fc.nat(), day: fc.nat(PAST.length - 1), agent: fc.option(fc.constantFrom(...AGENTS)) }),
  fc.record({ op: fc.constant("backdatePrompt" as const), pick: fc.nat(), day: fc.nat(PAST.length - 1) }),
  fc.record({ op: fc.constant("dropUser" as const) }),
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

async function pick<T>(client: pg.ClientBase, sql: string, index: number): Promise<T | undefined> {
  const { rows } = await client.query(sql);
  return rows.length ? (rows[index % rows.length] as T) : undefined;
}

function aRun(spec: { versions: { agent: string; scores: number | null }[]; best: number | null }, promptId?: string) {
  const versions = spec.versions.map(({ agent, scores }) => ({
    agent, text: "v", scores: scores === null ? null : Object.fromEntries(CRITERIA.map((c, i) => [c, i % 2 ? scores : 10 - scores])),
  }));
  return { ...(promptId ? { prompt_id: Number(promptId) } : { prompt: "p" }), versions, best_version: spec.best === null ? null : spec.best % versions.length };
}

/** Applies one random write as the user who owns the row it touches (or as the owner, for maintenance). */
async function apply(client: pg.PoolClient, step: Operation, live: string[]): Promise<void> {
  const liveUsers = `(${live.join(",")})`;
  const version = await pick<{ id: string; prompt_id: string; user_id: string }>(client,
    "select id, prompt_id, user_id from app_public.prompt_versions order by id", "pick" in step ? step.pick : 0);
  const prompt = await pick<{ id: string; user_id: string }>(client, "select id, user_id from app_public.prompts order by id", "pick" in step ? step.pick : 0);
  switch (step.op) {
    case "run": {
      const user = live[step.user % live.length];
      const mine = step.onExisting
        ? await pick<{ id: string }>(client, `select id from app_public.prompts where user_id = ${Number(user)} order by id`, step.pick) : undefined;
      await as(client, user, "app_user", "select app_public.record_run($1)", [JSON.stringify(aRun(step, mine?.id))]);
      return;
    }
    case "bulk":
      await client.query(`select app_private.generate_demo($1, $2)`, [live[step.user % live.length], step.prompts]);
      return;
    case "dropUser":
      // The second user goes, with everything of theirs.
      if (live.includes(users[1])) await client.query("delete from app_public.users where id = $1", [users[1]]);
      return;
    case "backdatePrompt":
      if (prompt) await client.query("update app_public.prompts set created_at = $2 where id = $1", [prompt.id, PAST[step.day]]);
      return;
    case "dropPrompt":
      if (prompt) await as(client, prompt.user_id, "app_user", "delete from app_public.prompts where id = $1", [prompt.id]);
      return;
    case "version":
      if (prompt) await as(client, prompt.user_id, "app_user", "insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'v', $2)", [prompt.id, step.agent]);
      return;
  }
  if (!version || !live.includes(version.user_id) || liveUsers === "()") return;
  const run = (sql: string, params: unknown[]) => as(client, version.user_id, "app_user", sql, params);
  switch (step.op) {
    case "score":
      await run(`insert into app_public.judge_scores (prompt_version_id, clarity, specificity, actionability, structure, context_use)
                 values ($1, $2, $3, $4, $5, $6) on conflict (prompt_version_id) do nothing`, [version.id, ...step.values]);
      break;
    case "rescore":
      await run("update app_public.judge_scores set clarity = $2 where prompt_version_id = $1", [version.id, step.value]);
      break;
    case "unscore":
      await run("delete from app_public.judge_scores where prompt_version_id = $1", [version.id]);
      break;
    case "head":
      await run("select app_public.set_best_head($1)", [version.id]);
      break;
    case "unhead":
      await run("delete from app_public.best_heads where prompt_id = $1", [version.prompt_id]);
      break;
    case "resource":
      await run("update app_public.prompt_versions set source = $2 where id = $1", [version.id, step.agent]);
      break;
    case "dropVersion":
      await run("delete from app_public.prompt_versions where id = $1", [version.id]);
      break;
    case "backdateVersion":
      await client.query("update app_public.prompt_versions set created_at = $2, source = coalesce($3, source) where id = $1",
        [version.id, PAST[step.day], step.agent]);
      break;
  }
}

const numbers = (row: Record<string, unknown>) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, typeof v === "string" && k !== "agent" && k !== "opponent" ? Number(v) : v]));

/** Every function's answer, for each viewer and window, against the recomputation. */
async function expectAnalyticsMatch(client: pg.PoolClient, viewed: string[], windows = WINDOWS) {
  const rows: Rows = await readRows(client);
  const viewers = [...viewed.map((id) => ({ id, role: "app_user", scope: new Set([id]) as Set<string> | "all" })),
    { id: admin, role: "app_admin", scope: "all" as const }];
  for (const viewer of viewers) {
    for (const [from, to] of windows) {
      const context = `${viewer.role} ${viewer.id} [${from}, ${to})`;
      const want = effectiveness(rows, viewer.scope, from, to);
      const got = (await as(client, viewer.id, viewer.role, "select * from app_public.agent_effectiveness_between($1, $2)", [from, to])).rows;
      expect(got.map((r) => r.agent), context).toEqual(AGENTS);
      for (const row of got) {
        const { agent, ...figures } = numbers(row);
        for (const [name, value] of Object.entries(want[agent as string])) {
          expect(figures[name], `${context} ${agent} ${name}`).toBeCloseTo(value, 9);
        }
      }
      const pairs = headToHead(rows, viewer.scope, from, to);
      const gotPairs = (await as(client, viewer.id, viewer.role, "select * from app_public.agent_head_to_head($1, $2)", [from, to])).rows.map(numbers);
      expect(gotPairs, context).toEqual(pairs);
      const wantRatings = ratings(pairs);
      const gotRatings = (await as(client, viewer.id, viewer.role, "select * from app_public.agent_ratings($1, $2)", [from, to])).rows;
      // Best first (agents rated alike may come in either order).
      expect(gotRatings.map((r) => r.agent).sort(), context).toEqual(wantRatings.map((r) => r.agent).sort());
      gotRatings.slice(1).forEach((row, i) => expect(row.rating, context).toBeLessThanOrEqual(gotRatings[i].rating));
      for (const row of gotRatings) {
        const want = wantRatings.find((r) => r.agent === row.agent)!;
        for (const name of ["rating", "lower", "upper"] as const) expect(row[name], `${context} ${row.agent} ${name}`).toBeCloseTo(want[name], 6);
      }
    }
  }
}

describe("agent analytics", () => {
  it("match a recomputation from the rows after every random write, for each user and an admin, in every window", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 12 }), async (steps) => {
        const client = await db.pool.connect();
        try {
          await client.query("begin");
          for (const step of steps) {
            const live = (await client.query<{ id: string }>("select id from app_public.users where id = any ($1) order by id", [users])).rows.map((r) => r.id);
            await apply(client, step, live);
            await expectAnalyticsMatch(client, live, step === steps.at(-1) ? WINDOWS : WINDOWS.slice(0, 1));
          }
        } finally {
          await client.query("rollback");
          client.release();
        }
      }),
      { numRuns: 30, endOnFailure: true },
    );
  }, 240_000);

  it("take a deleted user's figures, and a backdated prompt's matches, out of the windows they left", async () => {
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      const [leaving, staying] = [await createUser(db.pool), await createUser(db.pool)];
      for (const user of [leaving, staying]) await client.query("select app_private.generate_demo($1, 3)", [user]);
      await client.query("update app_public.prompts set created_at = $2 where id = (select min(id) from app_public.prompts where user_id = $1)", [staying, PAST[1]]);
      await client.query("delete from app_public.users where id = $1", [leaving]);
      await expectAnalyticsMatch(client, [staying]);
      const { rows } = await client.query("select count(*)::int as n from app_hidden.agent_day_stats where user_id = $1", [leaving]);
      expect(rows[0].n).toBe(0);
    } finally {
      await client.query("rollback");
      client.release();
    }
  });

  it("count a caller's writes made with prompter.new_run set: only recordRun, as the owner, adds a new prompt's figures itself", async () => {
    await actAs(db.pool, { role: "app_user", userId: users[0] }, async (client) => {
      await client.query("select set_config('prompter.new_run', 'on', true)");
      await client.query("with p as (insert into app_public.prompts (text) values ('p') returning id) insert into app_public.prompt_versions (prompt_id, text, source) select id, 'v', 'domain' from p");
      await client.query("select app_public.record_run($1)", [JSON.stringify(aRun({ versions: [{ agent: "syntax", scores: 4 }, { agent: "domain", scores: 6 }], best: 1 }))]);
      await client.query("insert into app_public.prompt_versions (prompt_id, text, source) select max(id), 'w', 'syntax' from app_public.prompts");
      // agent_effectiveness's all-time counters too.
      const { rows: [counts] } = await client.query(`select (select total from app_public.agent_effectiveness where agent = 'domain') as shown,
        (select count(*) from app_public.prompt_versions where source = 'domain') as versions`);
      expect(counts.shown).toBe(counts.versions);
      await client.query("reset role");
      await expectAnalyticsMatch(client, [users[0]], WINDOWS.slice(0, 1));
    });
  });

  it("gives a series per day or week with every agent in every bucket, summing to the window", async () => {
    const user = await createUser(db.pool);
    await db.pool.query("select app_private.generate_demo($1, 6)", [user]);
    await db.pool.query("update app_public.prompt_versions set created_at = $2 where id in (select id from app_public.prompt_versions where user_id = $1 order by id limit 4)",
      [user, PAST[2]]);
    const from = addDays(today, -13);
    const to = addDays(today, 1);
    await actAs(db.pool, { role: "app_user", userId: user }, async (client) => {
      const daily = (await client.query("select * from app_public.agent_effectiveness_series('day', $1, $2)", [from, to])).rows;
      expect(daily).toHaveLength(14 * AGENTS.length);
      const weekly = (await client.query("select * from app_public.agent_effectiveness_series('week', $1, $2)", [from, to])).rows;
      const mondays = new Set(weekly.map((r) => utcDay(r.bucket_start)));
      for (const monday of mondays) expect(new Date(`${monday}T00:00:00Z`).getUTCDay()).toBe(1);
      const window = (await client.query("select agent, total, wins, scored from app_public.agent_effectiveness_between($1, $2)", [from, to])).rows;
      for (const series of [daily, weekly]) {
        for (const { agent, total, wins, scored } of window) {
          const mine = series.filter((r) => r.agent === agent);
          expect([total, wins, scored].map(Number)).toEqual(["total", "wins", "scored"].map((f) => mine.reduce((s, r) => s + Number(r[f]), 0)));
        }
      }
      expect(Number(daily.find((r) => utcDay(r.bucket_start) === PAST[2].slice(0, 10) && Number(r.total) > 0)?.total ?? 0)).toBeGreaterThan(0);
    });
  });

  it("refuses bad ranges and buckets with codes of their own, and callers who are not signed in", async () => {
    await actAs(db.pool, { role: "app_user", userId: users[0] }, async (client) => {
      await client.query("savepoint s");
      for (const [sql, code] of [
        ["select * from app_public.agent_effectiveness_between('2026-02-01', '2026-01-01')", "PARNG"],
        ["select * from app_public.agent_head_to_head('2026-02-01', null)", "PARNG"],
        ["select * from app_public.agent_ratings('2026-02-02', '2026-02-01')", "PARNG"],
        ["select * from app_public.agent_effectiveness_series('month', '2026-01-01', '2026-02-01')", "PABKT"],
        ["select * from app_public.agent_effectiveness_series('day', '2025-01-01', '2026-01-03')", "PASPN"],
        ["select * from app_public.agent_effectiveness_series('week', '2026-02-01', '2026-01-01')", "PARNG"],
      ] as const) {
        expect((await errorOf(client.query(sql))).code, sql).toBe(code);
        await client.query("rollback to savepoint s");
      }
      // A year of days, leap years included, is allowed.
      expect((await client.query("select count(*)::int as n from app_public.agent_effectiveness_series('day', '2024-01-01', '2025-01-01')")).rows[0].n).toBe(366 * AGENTS.length);
    });
    await actAs(db.pool, { role: "app_anonymous" }, async (client) => {
      expect((await errorOf(client.query("select * from app_public.agent_ratings('2026-01-01', '2026-02-01')"))).code).toBe("42501");
    });
  });
});

/** A random committed or rolled-back transaction of one user. */
async function randomTransaction(client: pg.Client, userId: string, random: () => number): Promise<void> {
  const agent = () => AGENTS[Math.floor(random() * AGENTS.length)];
  const value = () => Math.round(random() * 20) / 2;
  await client.query("begin");
  try {
    await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [userId]);
    const existing = (await client.query<{ id: string; prompt_id: string }>("select id, prompt_id from app_public.prompt_versions order by random() limit 1")).rows[0];
    const kind = random();
    if (kind < 0.5 || !existing) {
      const versions = Array.from({ length: 1 + Math.floor(random() * 3) }, () => ({ agent: agent(), scores: random() < 0.8 ? value() : null }));
      const mine = random() < 0.3 ? existing?.prompt_id : undefined;
      await client.query("select app_public.record_run($1)", [JSON.stringify(aRun({ versions, best: random() < 0.7 ? Math.floor(random() * 3) : null }, mine))]);
    } else if (kind < 0.6) await client.query("update app_public.judge_scores set clarity = $2 where prompt_version_id = $1", [existing.id, value()]);
    else if (kind < 0.7) await client.query("update app_public.prompt_versions set source = $2 where id = $1", [existing.id, agent()]);
    else if (kind < 0.8) await client.query("select app_public.set_best_head($1)", [existing.id]);
    else if (kind < 0.9) await client.query("delete from app_public.prompt_versions where id = $1", [existing.id]);
    else await client.query("delete from app_public.prompts where id = $1", [existing.prompt_id]);
    await client.query(random() < 0.2 ? "rollback" : "commit");
  } catch (error) {
    // Another writer deleted the row this one referred to, or a deadlock over data rows: nothing is stored.
    if (!["23503", "PRNFD", "40P01"].includes((error as { code?: string }).code ?? "")) throw error;
    await client.query("rollback");
  }
}

function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

describe("agent analytics under concurrent writers", () => {
  it("stay exact when ten connections of one user and of several users write at once", async () => {
    const busy = await createUser(db.pool);
    const others = await Promise.all(Array.from({ length: 4 }, () => createUser(db.pool)));
    await Promise.all(Array.from({ length: 10 }, async (_, i) => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        const random = seeded(7 + i);
        for (let t = 0; t < 20; t++) await randomTransaction(client, i < 5 ? busy : others[i % 4], random);
      } finally {
        await client.end();
      }
    }));
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      await expectAnalyticsMatch(client, [busy, ...others], WINDOWS.slice(0, 1));
    } finally {
      await client.query("rollback");
      client.release();
    }
    // The writers overlapped and added to different slots of the all-users rows rather than queueing on one.
    const { rows } = await db.pool.query("select count(distinct slot)::int as slots from app_hidden.agent_day_totals");
    expect(rows[0].slots).toBeGreaterThan(1);
  }, 120_000);
});

describe("agent analytics for SQL logins", () => {
  const logins: string[] = [];
  afterAll(async () => {
    for (const login of logins) {
      await db.pool.query("call app_private.remove_sql_login($1, null)", [login]).catch(() => {});
      await asSuperuser((client) => client.query(`drop role if exists ${login}`));
    }
  });

  it("give a reader login its user's figures and an admin's login everyone's", async () => {
    const [reader, auditor] = [await createUser(db.pool), await createUser(db.pool, { admin: true })];
    await db.pool.query("select app_private.generate_demo($1, 4)", [reader]);
    const connect = async (userId: string, admin: boolean) => {
      const login = `sqltest_${randomBytes(5).toString("hex")}`;
      logins.push(login);
      const { rows: [{ username }] } = await db.pool.query("select username from app_public.users where id = $1", [userId]);
      const { rows } = await db.pool.query("select generated_password from app_private.add_sql_login($1, $2, is_admin => $3)", [login, username, admin]);
      const url = new URL(db.url);
      url.username = login;
      url.password = rows[0].generated_password;
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      return client;
    };
    const rows = await readRows(db.pool as never);
    const [from, to] = WINDOWS[0];
    for (const [userId, admin, scope] of [[reader, false, new Set([reader])], [auditor, true, "all"]] as const) {
      const client = await connect(userId, admin);
      try {
        const got = (await client.query("select agent, total, wins from app_public.agent_effectiveness_between($1, $2)", [from, to])).rows;
        const want = effectiveness(rows, scope, from, to);
        expect(got.map((r) => [r.agent, Number(r.total), Number(r.wins)])).toEqual(AGENTS.map((a) => [a, want[a].total, want[a].wins]));
        const pairs = (await client.query("select * from app_public.agent_head_to_head($1, $2)", [from, to])).rows.map(numbers);
        expect(pairs).toEqual(headToHead(rows, scope, from, to));
      } finally {
        await client.end();
      }
    }
  });
});
