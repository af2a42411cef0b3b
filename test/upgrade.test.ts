// A database made by the previous release (its committed migrations and its
// sql/, taken from git) upgrades with the current migrate and keeps every row and
// every figure: the counters it kept in one row per user move into slot 0 of the
// striped counters, which readers now sum; its SQL logins get a transaction
// limit and may still connect; multi_agent_log's rows are filled; agent_effectiveness
// gains each win rate's Wilson interval.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { createDatabase, createUser } from "./support/db.ts";
import { buildPreviousRelease } from "./support/previous-release.ts";
import { migrateDatabase } from "../src/db/migrate.ts";
import { expectedExport } from "./exports/oracle.ts";
import { effectiveness, headToHead, readRows, utcDay, wilson } from "./analytics/oracle.ts";

let database: Awaited<ReturnType<typeof createDatabase>>;
let pool: pg.Pool;
const logins: string[] = [];

beforeAll(async () => {
  database = await createDatabase();
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
  await pool.query("drop schema app_public, app_hidden, app_private, graphile_migrate, graphile_worker cascade");
  await buildPreviousRelease(database.url);
});

afterAll(async () => {
  for (const login of logins) await pool?.query("call app_private.remove_sql_login($1, null)", [login]).catch(() => {});
  await pool?.end();
  await database?.drop();
});

/** Runs statements as the user and commits. */
async function writeAs(userId: string, statements: [string, unknown[]?][]) {
  const client = await pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [userId]);
    for (const [sql, params] of statements) await client.query(sql, params);
    await client.query("commit");
  } finally {
    client.release();
  }
}

async function figures(viewers: { id: string; role: string }[]) {
  const client = await pool.connect();
  try {
    const seen: Record<string, unknown> = {};
    for (const viewer of viewers) {
      await client.query("begin");
      await client.query("select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true)", [viewer.role, viewer.id]);
      seen[`${viewer.role} ${viewer.id}`] = {
        // The previous release's columns; the win rate's interval came after it (checked below).
        effectiveness: (await client.query("select agent, wins, total, win_rate, avg_score, scored from app_public.agent_effectiveness order by agent")).rows,
        dataVersion: (await client.query("select app_hidden.current_data_version()::text as v")).rows[0].v,
      };
      await client.query("rollback");
    }
    const counts = await client.query(`select (select count(*) from app_public.prompts) as prompts,
      (select count(*) from app_public.prompt_versions) as versions, (select count(*) from app_public.judge_scores) as scores,
      (select count(*) from app_public.best_heads) as heads`);
    return { seen, rows: counts.rows[0] };
  } finally {
    client.release();
  }
}

/** The per-day analytics the upgrade filled in: all time as agent_effectiveness was, and each window as the rows say. */
async function expectAnalyticsOfRows(viewers: { id: string; role: string }[], before: Awaited<ReturnType<typeof figures>>) {
  const client = await pool.connect();
  try {
    const rows = await readRows(client);
    const today = utcDay(new Date());
    const days = (n: number) => utcDay(new Date(Date.now() + n * 86_400_000));
    for (const viewer of viewers) {
      const scope = viewer.role === "app_admin" ? "all" as const : new Set([viewer.id]);
      await client.query("begin");
      await client.query("select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true)", [viewer.role, viewer.id]);
      const allTime = (await client.query("select agent, wins, total, win_rate, avg_score, scored from app_public.agent_effectiveness_between('2000-01-01', $1)", [days(1)])).rows;
      expect(allTime).toEqual((before.seen[`${viewer.role} ${viewer.id}`] as { effectiveness: unknown }).effectiveness);
      for (const [from, to] of [[days(-4), today], [today, days(1)], [days(-6), days(1)]]) {
        const window = (await client.query("select agent, wins, total, scored from app_public.agent_effectiveness_between($1, $2)", [from, to])).rows;
        const want = effectiveness(rows, scope, from, to);
        expect(window.map((r) => [r.agent, Number(r.wins), Number(r.total), Number(r.scored)]))
          .toEqual(Object.entries(want).map(([agent, f]) => [agent, f.wins, f.total, f.scored]));
        const pairs = (await client.query("select * from app_public.agent_head_to_head($1, $2)", [from, to])).rows;
        expect(pairs.map((p) => ({ ...p, wins: Number(p.wins), losses: Number(p.losses), ties: Number(p.ties) }))).toEqual(headToHead(rows, scope, from, to));
      }
      await client.query("rollback");
    }
  } finally {
    client.release();
  }
}

/** multi_agent_log's rows as the actor reads them (header first), empty cells for nulls as in the CSV. */
async function multiAgentLogAs(actor: { role: string; userId: string }): Promise<string[][]> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true)", [actor.role, actor.userId]);
    const { rows: [{ query }] } = await client.query("select query from app_hidden.export_parts('multi_agent_log')");
    const result = await client.query({ text: query, rowMode: "array" });
    return [result.fields.map((field) => field.name), ...result.rows.map((row: unknown[]) => row.map((cell) => (cell === null ? "" : String(cell))))];
  } finally {
    await client.query("rollback");
    client.release();
  }
}

/** After the upgrade each viewer's agent_effectiveness has the Wilson interval of its kept wins and total. */
async function expectIntervals(viewers: { id: string; role: string }[]) {
  const client = await pool.connect();
  try {
    for (const viewer of viewers) {
      await client.query("begin");
      await client.query("select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true)", [viewer.role, viewer.id]);
      const { rows } = await client.query("select agent, wins, total, win_rate_lower, win_rate_upper from app_public.agent_effectiveness order by agent");
      await client.query("rollback");
      expect(rows.length).toBeGreaterThan(0);
      for (const row of rows) {
        const [lower, upper] = wilson(Number(row.wins), Number(row.total));
        expect(row.win_rate_lower, `${viewer.role} ${viewer.id} ${row.agent}`).toBeCloseTo(lower, 12);
        expect(row.win_rate_upper, `${viewer.role} ${viewer.id} ${row.agent}`).toBeCloseTo(upper, 12);
      }
    }
  } finally {
    client.release();
  }
}

describe("upgrade from the previous release", () => {
  it("keeps every row, every agent_effectiveness figure and every data version", async () => {
    const alice = await createUser(pool);
    const bob = await createUser(pool);
    const admin = await createUser(pool, { admin: true });
    await pool.query("select app_private.generate_demo($1, 40)", [alice]);
    await writeAs(bob, [
      ["insert into app_public.prompts (text) values ('mine')"],
      ["insert into app_public.prompt_versions (prompt_id, text, source) select id, 'better', 'domain' from app_public.prompts"],
      ["insert into app_public.prompt_versions (prompt_id, text, source) select id, 'clearer', 'syntax' from app_public.prompts"],
      [`insert into app_public.judge_scores (prompt_version_id, clarity, specificity, actionability, structure, context_use)
        select id, 7.5, 6, 5, 4, 3 from app_public.prompt_versions`],
      ["select app_public.set_best_head(min(id)) from app_public.prompt_versions"],
    ]);
    await writeAs(alice, [
      ["delete from app_public.prompt_versions where id in (select id from app_public.prompt_versions order by id limit 7)"],
      ["update app_public.judge_scores set clarity = 0 where prompt_version_id in (select id from app_public.prompt_versions order by id desc limit 5)"],
    ]);
    // Rows of earlier days: the upgrade counts them in their own days.
    await pool.query("update app_public.prompt_versions set created_at = created_at - interval '3 days' where id % 4 = 0");
    await pool.query("update app_public.prompts set created_at = created_at - interval '5 days' where id % 3 = 0");
    const viewers = [{ id: alice, role: "app_user" }, { id: bob, role: "app_user" }, { id: admin, role: "app_admin" }];
    const before = await figures(viewers);
    expect(Number(before.rows.versions)).toBe(40 * 3 - 7 + 2);
    // A SQL login of the previous release, connected: it may connect again after the upgrade.
    const login = `upgrade_${randomBytes(5).toString("hex")}`;
    logins.push(login);
    const { rows: [{ generated_password: password }] } = await pool.query(
      "select generated_password from app_private.add_sql_login($1, (select username from app_public.users where id = $2))", [login, bob]);
    const loginUrl = new URL(database.url);
    loginUrl.username = login;
    loginUrl.password = password;
    const connectsAsLogin = async () => {
      const client = new pg.Client({ connectionString: loginUrl.toString() });
      client.on("error", () => {});
      return client.connect().then(() => client.query("select count(*)::int as n from app_public.prompts")).then((r) => r.rows[0].n, (e) => e.code)
        .finally(() => client.end().catch(() => {}));
    };
    expect(await connectsAsLogin()).toBe(1);

    await migrateDatabase(database.url);

    expect(await figures(viewers)).toEqual(before);
    await expectIntervals(viewers);
    // The upgrade fills the rows multi_agent_log now reads from what the tables hold.
    for (const viewer of viewers) {
      const actor = { role: viewer.role as "app_user" | "app_admin", userId: viewer.id };
      expect(await multiAgentLogAs(actor), `${viewer.role} ${viewer.id}`).toEqual((await expectedExport(pool, actor, "multi_agent_log")).get("multi_agent_log.csv"));
    }
    await expectAnalyticsOfRows(viewers, before);
    const slots = await pool.query("select distinct slot from app_hidden.agent_stats union select distinct slot from app_hidden.data_versions");
    expect(slots.rows).toEqual([{ slot: 0 }]);

    // The login gets the default transaction limit, as its role's setting where PostgreSQL has it
    // (so its settings are as configured); migrating again keeps it out only while migrating.
    const listed = await pool.query("select transaction_timeout, settings_changed from app_private.list_sql_logins() where login = $1", [login]);
    expect(listed.rows).toEqual([{ transaction_timeout: "600000ms", settings_changed: false }]);
    expect(await connectsAsLogin()).toBe(1);
    await migrateDatabase(database.url);
    expect(await connectsAsLogin()).toBe(1);
    expect((await pool.query("select count(*)::int as n from app_private.sql_login_lockouts")).rows[0].n).toBe(0);
    // The export channel's secret name is made once, and kept.
    const channels = await pool.query("select purpose, channel ~ '^prompter_exports_[0-9a-f]{32}$' as secret from app_private.notification_channels");
    expect(channels.rows).toEqual([{ purpose: "exports", secret: true }]);

    // An export made before the upgrade is current until the data changes, and then stale.
    const staleAs = async (userId: string) => {
      const client = await pool.connect();
      try {
        await client.query("begin");
        await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [userId]);
        const { rows } = await client.query("select app_public.exports_stale(jsonb_populate_record(null::app_public.exports, $1)) as stale",
          [{ user_id: userId, data_version: (before.seen[`app_user ${userId}`] as { dataVersion: string }).dataVersion, is_global: false }]);
        return rows[0].stale;
      } finally {
        await client.query("rollback");
        client.release();
      }
    };
    expect(await staleAs(bob)).toBe(false);
    await writeAs(bob, [["update app_public.prompts set text = 'edited'"]]);
    expect(await staleAs(bob)).toBe(true);
    expect(await staleAs(alice)).toBe(false);
  });
});
