// The RLS matrix: for every table and operation, what the owner, another user,
// an admin and anonymous get when they touch user A's rows.
import { beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { actAs, createUser, errorOf, useTestDatabase, type Actor } from "./support/db.ts";

const db = useTestDatabase();
const ids = {} as Record<"alice" | "bob" | "admin" | "prompt" | "version" | "otherVersion" | "score" | "export", string>;

beforeAll(async () => {
  ids.alice = await createUser(db.pool, { username: "alice" });
  ids.bob = await createUser(db.pool, { username: "bob" });
  ids.admin = await createUser(db.pool, { username: "root", admin: true });
  // Alice's data, written as Alice and committed.
  const client = await db.pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [ids.alice]);
    ids.prompt = (await client.query("insert into app_public.prompts (text) values ('alice prompt') returning id")).rows[0].id;
    ids.version = (await client.query(
      "insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'v1', 'syntax') returning id", [ids.prompt])).rows[0].id;
    ids.otherVersion = (await client.query(
      "insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'v2', 'domain') returning id", [ids.prompt])).rows[0].id;
    ids.score = (await client.query(
      "insert into app_public.judge_scores (prompt_version_id, clarity, specificity, actionability, structure, context_use) values ($1, 1, 2, 3, 4, 5) returning id",
      [ids.version])).rows[0].id;
    await client.query("insert into app_public.best_heads (prompt_id, prompt_version_id) values ($1, $2)", [ids.prompt, ids.version]);
    ids.export = (await client.query("select id from app_public.request_export('prompt_versions')")).rows[0].id;
    await client.query("commit");
  } finally {
    client.release();
  }
});

type Who = "owner" | "other" | "admin" | "anonymous";
const actor = (who: Who): Actor =>
  who === "anonymous" ? { role: "app_anonymous" }
    : { role: who === "admin" ? "app_admin" : "app_user", userId: ids[who === "owner" ? "alice" : who === "other" ? "bob" : "admin"] };

interface TableCase {
  table: string;
  /** Selects Alice's row. */
  select: () => [string, unknown[]];
  /** Inserts a row into Alice's data (as anyone but Alice: tries to). */
  insert: (who: Who) => [string, unknown[]];
  /** How inserting into someone else's data fails: no column to name another owner, or a composite key. */
  foreignInsertCode: string;
  update: () => [string, unknown[]];
  delete: () => [string, unknown[]];
}

const cases: TableCase[] = [
  {
    table: "prompts",
    select: () => ["select id from app_public.prompts where id = $1", [ids.prompt]],
    insert: (who) => who === "owner"
      ? ["insert into app_public.prompts (text) values ('new')", []]
      : ["insert into app_public.prompts (user_id, text) values ($1, 'new')", [ids.alice]],
    foreignInsertCode: "42501",
    update: () => ["update app_public.prompts set text = 'changed' where id = $1", [ids.prompt]],
    delete: () => ["delete from app_public.prompts where id = $1", [ids.prompt]],
  },
  {
    table: "prompt_versions",
    select: () => ["select id from app_public.prompt_versions where id = $1", [ids.version]],
    insert: () => ["insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'new', 'structure')", [ids.prompt]],
    foreignInsertCode: "23503",
    update: () => ["update app_public.prompt_versions set text = 'changed' where id = $1", [ids.version]],
    delete: () => ["delete from app_public.prompt_versions where id = $1", [ids.version]],
  },
  {
    table: "judge_scores",
    select: () => ["select id from app_public.judge_scores where id = $1", [ids.score]],
    insert: () => ["insert into app_public.judge_scores (prompt_version_id, clarity, specificity, actionability, structure, context_use) values ($1, 1, 1, 1, 1, 1)", [ids.otherVersion]],
    // Someone else's version is refused like a missing one (see test/tenant-oracle.test.ts).
    foreignInsertCode: "PRNFD",
    update: () => ["update app_public.judge_scores set clarity = 9 where id = $1", [ids.score]],
    delete: () => ["delete from app_public.judge_scores where id = $1", [ids.score]],
  },
  {
    table: "best_heads",
    select: () => ["select prompt_id from app_public.best_heads where prompt_id = $1", [ids.prompt]],
    insert: () => ["insert into app_public.best_heads (prompt_id, prompt_version_id) values ($1, $2) on conflict (prompt_id) do update set prompt_version_id = excluded.prompt_version_id", [ids.prompt, ids.otherVersion]],
    // Refused before the upsert meets Alice's head: her version is not the caller's.
    foreignInsertCode: "PRNFD",
    update: () => ["update app_public.best_heads set prompt_version_id = $2 where prompt_id = $1", [ids.prompt, ids.otherVersion]],
    delete: () => ["delete from app_public.best_heads where prompt_id = $1", [ids.prompt]],
  },
];

// What each actor gets for each operation on Alice's rows:
//  rows: number of Alice's rows seen/changed; code: the error ("foreign": the
//  table's foreignInsertCode).
const expected: Record<Who, Record<"select" | "insert" | "update" | "delete", { rows?: number; code?: string }>> = {
  owner: { select: { rows: 1 }, insert: { rows: 1 }, update: { rows: 1 }, delete: { rows: 1 } },
  // Another user sees nothing of Alice's, cannot attach rows to hers (the
  // composite foreign keys include user_id), and changes nothing.
  other: { select: { rows: 0 }, insert: { code: "foreign" }, update: { rows: 0 }, delete: { rows: 0 } },
  // An admin reads everything but writes only their own rows.
  admin: { select: { rows: 1 }, insert: { code: "foreign" }, update: { rows: 0 }, delete: { rows: 0 } },
  anonymous: { select: { code: "42501" }, insert: { code: "42501" }, update: { code: "42501" }, delete: { code: "42501" } },
};

async function outcome(client: pg.PoolClient, sql: string, params: unknown[]) {
  try {
    const result = await client.query(sql, params);
    return { rows: result.rowCount ?? 0 };
  } catch (error) {
    return { code: (error as { code: string }).code };
  }
}

describe.each(cases)("RLS on $table", (tableCase) => {
  describe.each(["owner", "other", "admin", "anonymous"] as Who[])("as %s", (who) => {
    for (const op of ["select", "insert", "update", "delete"] as const) {
      it(op, async () => {
        const [sql, params] = tableCase[op](who);
        const result = await actAs(db.pool, actor(who), (c) => outcome(c, sql, params));
        const want = expected[who][op];
        expect(result).toEqual(want.code === "foreign" ? { code: tableCase.foreignInsertCode } : want);
      });
    }
  });
});

describe("RLS on users, agents, exports and the effectiveness view", () => {
  it("a user sees only their own user row, an admin all, anonymous none", async () => {
    const count = "select count(*)::int as n from app_public.users";
    expect(await actAs(db.pool, actor("owner"), async (c) => (await c.query(count)).rows[0].n)).toBe(1);
    expect(await actAs(db.pool, actor("admin"), async (c) => (await c.query(count)).rows[0].n)).toBe(3);
    expect((await actAs(db.pool, actor("anonymous"), (c) => errorOf(c.query(count)))).code).toBe("42501");
  });

  it("a user cannot make themselves an admin, nor change another user's name", async () => {
    const promote = await actAs(db.pool, actor("owner"), (c) =>
      errorOf(c.query("update app_public.users set is_admin = true where id = $1", [ids.alice])));
    expect(promote.code).toBe("42501");
    // Nobody updates users directly (renaming oneself: test/username-probes.test.ts).
    const rename = await actAs(db.pool, actor("other"), (c) =>
      errorOf(c.query("update app_public.users set username = 'hijacked' where id = $1", [ids.alice])));
    expect(rename.code).toBe("42501");
  });

  it("password hashes are out of reach of every API role", async () => {
    for (const who of ["owner", "admin", "anonymous"] as Who[]) {
      const error = await actAs(db.pool, actor(who), (c) => errorOf(c.query("select * from app_private.user_secrets")));
      expect(error.code).toBe("42501");
    }
  });

  it("agents are read by users and managed only by admins", async () => {
    expect(await actAs(db.pool, actor("owner"), async (c) =>
      (await c.query("select count(*)::int as n from app_public.agents")).rows[0].n)).toBe(3);
    const userInsert = await actAs(db.pool, actor("owner"), (c) =>
      errorOf(c.query("insert into app_public.agents (name) values ('rogue')")));
    expect(userInsert.code).toBe("42501");
    const adminInsert = await actAs(db.pool, actor("admin"), (c) =>
      c.query("insert into app_public.agents (name, description) values ('tone', 'Adjusts tone.')"));
    expect(adminInsert.rowCount).toBe(1);
    expect((await actAs(db.pool, actor("anonymous"), (c) => errorOf(c.query("select * from app_public.agents")))).code).toBe("42501");
  });

  it("exports are seen by their owner and admins only, and nobody can edit their outcome", async () => {
    const seen = (who: Who) => actAs(db.pool, actor(who), async (c) =>
      (await c.query("select count(*)::int as n from app_public.exports where id = $1", [ids.export])).rows[0].n);
    expect([await seen("owner"), await seen("other"), await seen("admin")]).toEqual([1, 0, 1]);
    const forge = await actAs(db.pool, actor("owner"), (c) =>
      errorOf(c.query("update app_public.exports set status = 'succeeded' where id = $1", [ids.export])));
    expect(forge.code).toBe("42501");
    const spoof = await actAs(db.pool, actor("owner"), (c) =>
      errorOf(c.query("insert into app_public.exports (kind, requested_role) values ('all', 'app_admin')")));
    expect(spoof.code).toBe("42501");
  });

  it("agent_effectiveness shows a user their own figures, an admin everyone's, anonymous nothing", async () => {
    const syntax = (who: Who) => actAs(db.pool, actor(who), async (c) =>
      (await c.query("select wins::int, total::int from app_public.agent_effectiveness where agent = 'syntax'")).rows[0]);
    expect(await syntax("owner")).toEqual({ wins: 1, total: 1 });
    expect(await syntax("other")).toEqual({ wins: 0, total: 0 });
    expect(await syntax("admin")).toEqual({ wins: 1, total: 1 });
    const anonymous = await actAs(db.pool, actor("anonymous"), (c) => errorOf(c.query("select * from app_public.agent_effectiveness")));
    expect(anonymous.code).toBe("42501");
  });
});
