// Read-only database logins (`prompter sql-user`): connected over TCP with their
// own password, they read exactly what their app user reads, write nothing, and
// stop working once removed (adding and removing them: sql-user-admin.test.ts).
import { beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { actAs, asSuperuser, createUser, errorOf, type Actor } from "./support/db.ts";
import { type LoginCredentials, useSqlLogins } from "./support/sql-logins.ts";

/** The DBA's hardening statement of the README (Deploy on managed PostgreSQL). */
const LARGE_OBJECT_HARDENING = "revoke execute on function lo_creat(int), lo_create(oid), lo_from_bytea(oid, bytea) from public";

const { db, people, newLoginName, addLogin, connectAs, removeLogin, roleExists, requestExportAsApp, usernameOf } = useSqlLogins();
let alice: string;
let bob: string;
let carol: string;
let aliceLogin: LoginCredentials;
let carolLogin: LoginCredentials;
beforeAll(() => ({ alice, bob, carol, aliceLogin, carolLogin } = people));
const aliceName = () => usernameOf(alice);

// Tables holding a user's rows, with the column naming the owner.
const OWNED: [string, string][] = [
  ["app_public.users", "id"],
  ["app_public.prompts", "user_id"],
  ["app_public.prompt_versions", "user_id"],
  ["app_public.judge_scores", "user_id"],
  ["app_public.best_heads", "user_id"],
  ["app_public.exports", "user_id"],
  ["app_hidden.agent_stats", "user_id"],
  ["app_hidden.data_versions", "user_id"],
];
const SHARED: [string, string][] = [["app_public.agents", "name"], ["app_public.export_kinds", "name"]];
const PRIVATE: [string, string][] = [
  ["app_private.sql_logins", "user_id"],
  ["app_private.user_secrets", "user_id"],
  ["graphile_worker._private_jobs", "id"],
  ["graphile_migrate.migrations", "hash"],
];

/** Rows of the table that `on` can see: all of them, and those owned by the user. */
async function counts(on: pg.Pool | pg.Client, table: string, ownerColumn: string, userId: string) {
  const { rows } = await on.query<{ all: string; own: string }>(
    `select count(*) as all, count(*) filter (where ${ownerColumn} = $1) as own from ${table}`, [userId]);
  return { all: Number(rows[0].all), own: Number(rows[0].own) };
}

/** agent_effectiveness as the login reads it, and as its user reads it through the app. */
async function effectivenessTwice(credentials: { login: string; password: string }, actor: Actor) {
  const client = await connectAs(credentials);
  const read = async (on: pg.ClientBase) => (await on.query("select * from app_public.agent_effectiveness")).rows;
  const asLogin = await read(client);
  const throughApp = await actAs(db.pool, actor, read);
  return { client, asLogin, throughApp, versions: asLogin.reduce((sum, row) => sum + Number(row.total), 0) };
}

describe("a login mapped to a user", () => {
  it("acts for its user, with its default limits", async () => {
    const client = await connectAs(aliceLogin);
    const { rows } = await client.query(
      `select session_user as login, app_public.current_user_id()::text as user_id, app_public.current_user_is_admin() as admin,
              current_setting('statement_timeout') as statement_timeout,
              current_setting('idle_in_transaction_session_timeout') as idle_timeout,
              (select rolconnlimit from pg_roles where rolname = session_user) as connection_limit`);
    expect(rows[0]).toEqual({
      login: aliceLogin.login, user_id: alice, admin: false,
      statement_timeout: "1min", idle_timeout: "10min", connection_limit: 5,
    });
  });

  it.each(OWNED)("reads only its user's rows of %s", async (table, ownerColumn) => {
    const client = await connectAs(aliceLogin);
    const everything = await counts(db.pool, table, ownerColumn, alice);
    expect(everything.own).toBeGreaterThan(0);
    expect(everything.all).toBeGreaterThan(everything.own);
    expect(await counts(client, table, ownerColumn, alice)).toEqual({ all: everything.own, own: everything.own });
  });

  it.each(SHARED)("reads all of %s", async (table, column) => {
    const client = await connectAs(aliceLogin);
    const everything = await counts(db.pool, table, column, "");
    expect(everything.all).toBeGreaterThan(0);
    expect((await counts(client, table, column, "")).all).toBe(everything.all);
  });

  it("sees its user's figures in agent_effectiveness, as the user does through the app", async () => {
    const { asLogin, throughApp, versions } = await effectivenessTwice(aliceLogin, { role: "app_user", userId: alice });
    expect(asLogin).toEqual(throughApp);
    expect(versions).toBe((await counts(db.pool, "app_public.prompt_versions", "user_id", alice)).own);
  });

  it.each(PRIVATE)("cannot read %s", async (table) => {
    const client = await connectAs(aliceLogin);
    expect((await errorOf(client.query(`select * from ${table}`))).code).toBe("42501");
  });

  it.each([...OWNED, ...SHARED, ...PRIVATE])("cannot change %s", async (table, column) => {
    const client = await connectAs(aliceLogin);
    // users.id is generated always, which PostgreSQL checks before privileges.
    const updated = table === "app_public.users" ? "username" : column;
    const writes = [`update ${table} set ${updated} = ${updated}`, `delete from ${table}`, `truncate ${table}`];
    // Exports are queued by inserting one (see below); every other table refuses inserts.
    if (table !== "app_public.exports") writes.push(`insert into ${table} default values`);
    for (const write of writes) {
      expect({ write, code: (await errorOf(client.query(write))).code }).toEqual({ write, code: "42501" });
    }
  });

  it("cannot write anywhere else either: no new tables, temporary tables or logins", async () => {
    const client = await connectAs(aliceLogin);
    for (const write of [
      "create table public.sneaky (x int)",
      "create table app_public.sneaky (x int)",
      "create temporary table sneaky (x int)",
      "select app_public.set_best_head(1)",
      `select app_public.record_run('{"prompt": "sneaky", "versions": [{"agent": "syntax", "text": "sneaky"}]}')`,
      "select app_public.register('sneaky', 'a long enough password')",
      "select app_public.authenticate('sneaky', 'a long enough password')",
      "select graphile_worker.add_job('export', '{}')",
      "select app_private.add_sql_login('sneaky', 'sneaky')",
      `alter role ${aliceLogin.login} connection limit 100`,
    ]) {
      expect({ write, code: (await errorOf(client.query(write))).code }).toEqual({ write, code: "42501" });
    }
  });

  it("cannot write large objects once the DBA has run the README's hardening statement", async () => {
    // Only the owner of pg_catalog's functions (a superuser) can revoke these from PUBLIC.
    await asSuperuser((superuser) => superuser.query(LARGE_OBJECT_HARDENING), db.name);
    const client = await connectAs(aliceLogin);
    for (const write of ["select lo_creat(-1)", "select lo_create(0)", "select lo_from_bytea(0, 'x')"]) {
      expect({ write, code: (await errorOf(client.query(write))).code }).toEqual({ write, code: "42501" });
    }
  });

  it("cannot become another role", async () => {
    const client = await connectAs(aliceLogin);
    for (const role of ["app_user", "app_admin", "app_anonymous", "app_auditor", "authenticator", "postgres"]) {
      expect({ role, code: (await errorOf(client.query(`set role ${role}`))).code }).toEqual({ role, code: "42501" });
    }
    expect((await errorOf(client.query("set session authorization postgres"))).code).toBe("42501");
  });

  it("cannot become another user by setting jwt.claims.user_id", async () => {
    const client = await connectAs(aliceLogin);
    await client.query("select set_config('jwt.claims.user_id', $1, false)", [bob]);
    const { rows } = await client.query("select app_public.current_user_id()::text as user_id");
    expect(rows[0].user_id).toBe(alice);
    for (const [table, ownerColumn] of OWNED) {
      const own = (await counts(db.pool, table, ownerColumn, alice)).own;
      expect({ table, ...(await counts(client, table, ownerColumn, alice)) }).toEqual({ table, all: own, own });
    }
  });

  it("a reader login made by hand with NOINHERIT cannot pick its user through the claim either", async () => {
    const login = newLoginName();
    const password = randomBytes(12).toString("hex");
    await asSuperuser((su) => su.query(`create role ${login} login noinherit password '${password}' in role app_reader`));
    try {
      await db.pool.query(`grant connect on database ${db.name} to ${login}`);
      const client = await connectAs({ login, password });
      await client.query("select set_config('jwt.claims.user_id', $1, false)", [bob]);
      await client.query("set role app_reader");
      expect((await client.query("select app_public.current_user_id() as id")).rows[0].id).toBeNull();
      for (const [table, ownerColumn] of OWNED) {
        expect({ table, ...(await counts(client, table, ownerColumn, bob)) }).toEqual({ table, all: 0, own: 0 });
      }
      await client.end();
    } finally {
      // Made by the DBA, so only the DBA may drop it.
      await asSuperuser(async (su) => {
        await su.query(`drop owned by ${login}`);
        await su.query(`drop role ${login}`);
      }, db.name);
    }
  });

  it("cannot pass for someone else with temporary tables named like the catalog, where it may create them", async () => {
    // As in another database of the cluster, where nobody revoked TEMP from PUBLIC.
    const credentials = await addLogin(await aliceName());
    await db.pool.query(`grant temporary on database ${db.name} to ${credentials.login}`);
    const client = await connectAs(credentials);
    await client.query("create temporary table pg_roles as select session_user as rolname, true as rolsuper, 0::oid as oid");
    await client.query("create temporary table sql_logins as select session_user as login, $1::bigint as user_id", [bob]);
    await client.query("select set_config('jwt.claims.user_id', $1, false)", [bob]);
    expect((await client.query("select app_public.current_user_id()::text as id")).rows[0].id).toBe(alice);
  });

  it("cannot learn another user's data version through exports_stale with a forged row", async () => {
    const client = await connectAs(aliceLogin);
    const bobVersion = (await db.pool.query("select sum(version)::int as version from app_hidden.data_versions where user_id = $1", [bob])).rows[0].version;
    const forged = (version: number, global: boolean) => client.query<{ stale: boolean }>(
      `select app_public.exports_stale(row(1, $1, 'all', '{}', 'succeeded', 'x', $3, now(), null, null, null, null,
         null, null, 0, null, 0, $2, null, null, null, 'csv', '{}')::app_public.exports) as stale`, [bob, version, global]);
    // Bob's counter is invisible to this login, so even the right guess reads as "changed".
    expect((await forged(bobVersion, false)).rows[0].stale).toBe(true);
    const everyone = (await db.pool.query("select sum(version)::int as sum from app_hidden.data_versions")).rows[0].sum;
    expect((await forged(everyone, true)).rows[0].stale).toBe(true);
  });

  it("queues exports as itself, for its user, within the user's rate limit", async () => {
    const client = await connectAs(aliceLogin);
    await client.query("select set_config('jwt.claims.user_id', $1, false)", [bob]);
    const queued = await client.query("select id, user_id::text, requested_role, is_global, status from app_public.request_export('prompt_versions')");
    expect(queued.rows[0]).toMatchObject({ user_id: alice, requested_role: aliceLogin.login, is_global: false, status: "queued" });
    const job = await db.pool.query("select 1 from graphile_worker._private_jobs where payload->>'exportId' = $1", [String(queued.rows[0].id)]);
    expect(job.rowCount).toBe(1);
    // Nobody else's name goes on an export.
    expect((await errorOf(client.query("insert into app_public.exports (user_id, kind) values ($1, 'all')", [bob]))).code).toBe("42501");

    // The limit is the user's: exports requested through the app count too.
    await requestExportAsApp(alice);
    const recent = Number((await db.pool.query(
      "select count(*) from app_public.exports where user_id = $1 and requested_at > now() - interval '1 minute'", [alice])).rows[0].count);
    for (let i = recent; i < 10; i++) await client.query("select app_public.request_export('judge_scores')");
    const countExports = async () => (await db.pool.query("select count(*)::int as count from app_public.exports where user_id = $1", [alice])).rows[0].count;
    const before = await countExports();
    const refused = await errorOf(client.query("select app_public.request_export('judge_scores')"));
    expect(refused.code).toBe("PRRTL");
    expect(await countExports()).toBe(before);
  });
});

describe("an admin's login", () => {
  it.each(OWNED)("reads everyone's rows of %s", async (table, ownerColumn) => {
    const client = await connectAs(carolLogin);
    const everything = await counts(db.pool, table, ownerColumn, carol);
    expect((await counts(client, table, ownerColumn, carol)).all).toBe(everything.all);
  });

  it("sees the global figures in agent_effectiveness and queues global exports", async () => {
    const { client, asLogin, throughApp, versions } = await effectivenessTwice(carolLogin, { role: "app_admin", userId: carol });
    expect(asLogin).toEqual(throughApp);
    expect(versions).toBe((await counts(db.pool, "app_public.prompt_versions", "user_id", carol)).all);
    const queued = await client.query("select user_id::text, requested_role, is_global from app_public.request_export('all')");
    expect(queued.rows[0]).toEqual({ user_id: carol, requested_role: carolLogin.login, is_global: true });
    expect((await errorOf(client.query("delete from app_public.prompts"))).code).toBe("42501");
    expect((await errorOf(client.query("set role app_admin"))).code).toBe("42501");
  });

  async function adminWithLogin() {
    const id = await createUser(db.pool, { admin: true });
    const credentials = await addLogin(await usernameOf(id), true);
    const client = await connectAs(credentials);
    const countUsers = async () => Number((await client.query("select count(*) from app_public.users")).rows[0].count);
    expect(await countUsers()).toBeGreaterThan(1);
    return { id, credentials, client, countUsers };
  }

  it("reads only its user's rows once the user is no admin, in open sessions too", async () => {
    const { id, client, countUsers } = await adminWithLogin();
    await db.pool.query("update app_public.users set is_admin = false where id = $1", [id]);
    expect(await countUsers()).toBe(1);
    expect((await client.query("select app_public.current_user_is_admin() as admin")).rows[0].admin).toBe(false);
    const queued = await client.query("select is_global from app_public.request_export('all')");
    expect(queued.rows[0].is_global).toBe(false);
  });

  it("reads nothing while its user is disabled, in open sessions too, and only its own rows once enabled", async () => {
    const { id, client, countUsers } = await adminWithLogin();
    await db.pool.query("update app_public.users set is_disabled = true where id = $1", [id]);
    expect((await client.query("select app_public.current_user_id() as id")).rows[0].id).toBe(null);
    expect(await countUsers()).toBe(0);
    await db.pool.query("update app_public.users set is_disabled = false where id = $1", [id]);
    expect((await client.query("select app_public.current_user_id() as id")).rows[0].id).toBe(id);
    expect(await countUsers()).toBe(1);
  });

  it("reads nothing once its user is deleted, even with a claim set by hand, and stays listed for removal", async () => {
    const { id, credentials, client, countUsers } = await adminWithLogin();
    await db.pool.query("delete from app_public.users where id = $1", [id]);
    await client.query("select set_config('jwt.claims.user_id', $1, false)", [alice]);
    expect((await client.query("select app_public.current_user_id() as id")).rows[0].id).toBe(null);
    expect(await countUsers()).toBe(0);
    for (const [table] of OWNED) {
      expect({ table, count: Number((await client.query(`select count(*) from ${table}`)).rows[0].count) }).toEqual({ table, count: 0 });
    }
    const listed = await db.pool.query("select username, is_admin from app_private.list_sql_logins() where login = $1", [credentials.login]);
    expect(listed.rows).toEqual([{ username: null, is_admin: false }]);
    expect(await removeLogin(credentials.login)).toBe(1);
    expect(await roleExists(credentials.login)).toBe(false);
  });
});
