// Least privilege: the suite's owner is no superuser, the gateway logs in as
// the authenticator, and that login can do nothing but become an API role.
// Two prompter databases on one cluster share the NOLOGIN app roles; no login
// or token of one gets anything in the other.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { withCredentials } from "../../src/db/embedded.ts";
import { authenticatorOf, TEST_PASSWORD } from "../support/credentials.ts";
import { createDatabase, createUser, errorOf, useTestDatabase } from "../support/db.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ databaseUrl: db.url });
});
afterAll(async () => {
  await server?.stop();
});

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {}); // a session ended by a dropped database
  await client.connect();
  return client;
}

describe("the owner", () => {
  it("is a plain role: no superuser, and the suite migrated and runs as it", async () => {
    const { rows } = await db.pool.query(
      "select r.rolsuper, r.rolcreaterole, pg_get_userbyid(d.datdba) = current_user as owns_database from pg_roles r, pg_database d where r.rolname = current_user and d.datname = current_database()",
    );
    expect(rows).toEqual([{ rolsuper: false, rolcreaterole: true, owns_database: true }]);
    const { rows: owners } = await db.pool.query(
      "select distinct pg_get_userbyid(c.relowner) as owner from pg_class c where c.relnamespace in ('app_public'::regnamespace, 'app_private'::regnamespace, 'graphile_worker'::regnamespace)",
    );
    expect(owners.map((o) => o.owner)).toEqual([(await db.pool.query("select current_user")).rows[0].current_user]);
  });
});

describe("the gateway", () => {
  it("connects only as the authenticator (pg_stat_activity)", async () => {
    const userId = await createUser(db.pool);
    expect((await graphql(server, "{ currentUserId }", {}, signTestToken(userId))).data).toEqual({ currentUserId: userId });
    const { rows } = await db.pool.query(
      "select distinct usename from pg_stat_activity where datname = current_database() and application_name like 'prompter-gateway%'",
    );
    expect(rows).toEqual([{ usename: authenticatorOf(db.name) }]);
  });
});

describe("the authenticator's credentials", () => {
  let client: pg.Client;
  beforeAll(async () => {
    client = await connect(db.authUrl);
  });
  afterAll(async () => {
    await client?.end();
  });
  const refused = async (sql: string, code = "42501") => expect((await errorOf(client.query(sql))).code).toBe(code);

  it("hold no privilege of their own: no data, no app_private, no objects", async () => {
    await refused("select * from app_public.prompts");
    await refused("select * from app_private.user_secrets");
    await refused("select app_private.add_user('mallory', 'a long password')");
    await refused("create table public.planted (id int)");
    await refused("create schema planted");
    await refused("create temporary table planted (id int)");
    await refused("select count(*) from graphile_worker._private_jobs");
  });

  it("cannot run programs on the database host or read its files, as itself or as any API role", async () => {
    for (const role of [undefined, "app_anonymous", "app_user", "app_admin"]) {
      if (role) await client.query(`set role ${role}`);
      await refused("copy (select 1) to program 'id'");
      await refused("copy app_public.agents from program 'id'");
      await refused("select pg_read_file('/etc/passwd')");
      await refused("copy (select 1) to '/tmp/prompter-planted'");
      await client.query("reset role");
    }
  });

  it("can become the API roles and nothing else: not the owner, a reader, or a superuser", async () => {
    for (const role of ["app_anonymous", "app_user", "app_admin"]) {
      await client.query(`set role ${role}`);
      await client.query("reset role");
    }
    const owner = new URL(db.url).username;
    for (const role of [owner, "app_reader", "app_auditor", "postgres"]) await refused(`set role ${role}`);
  });

  it("reach the gateway's counts and nothing more", async () => {
    expect((await client.query("select app_hidden.gateway_applied_migrations() > 0 as applied")).rows).toEqual([{ applied: true }]);
    await client.query("select * from app_hidden.gateway_export_counts()");
    await refused("select * from app_private.live_workers('1 minute')");
  });
});

describe("two prompter databases on one cluster", () => {
  let other: Awaited<ReturnType<typeof createDatabase>>;
  beforeAll(async () => {
    other = await createDatabase();
  });
  afterAll(async () => {
    await other?.drop();
  });

  it("refuse to share an authenticator", async () => {
    const client = await connect(other.url);
    try {
      const shared = await errorOf(client.query("select app_private.ensure_authenticator($1, $2)", [authenticatorOf(db.name), TEST_PASSWORD]));
      expect(shared).toMatchObject({ code: "PRAUT", message: expect.stringContaining(`authenticator of database ${db.name}`) });
      const owner = await errorOf(client.query("select app_private.ensure_authenticator(current_user, $1)", [TEST_PASSWORD]));
      expect(owner.code).toBe("PRAUT");
    } finally {
      await client.end();
    }
  });

  it("let no login of one connect to the other", async () => {
    expect((await errorOf(connect(withCredentials(other.url, authenticatorOf(db.name), TEST_PASSWORD)))).code).toBe("42501");
    const login = `reader_${db.name.slice(-10)}`;
    await db.pool.query("insert into app_public.users (username) values ('lp_reader')");
    await db.pool.query("select app_private.add_sql_login($1, 'lp_reader', $2)", [login, TEST_PASSWORD]);
    try {
      expect((await errorOf(connect(withCredentials(other.url, login, TEST_PASSWORD)))).code).toBe("42501");
      const own = await connect(withCredentials(db.url, login, TEST_PASSWORD));
      await own.end();
    } finally {
      const owner = await connect(db.url);
      await owner.query("call app_private.remove_sql_login($1)", [login]);
      await owner.end();
    }
  });

  it("accept no token of the other (each deployment signs with its own secret)", async () => {
    const otherServer = await startServer({ databaseUrl: other.url, env: { JWT_SECRET: "another-deployment-secret-0123456789abcdef" } });
    try {
      const userId = await createUser(db.pool);
      const refusedHere = await graphql(otherServer, "{ currentUserId }", {}, signTestToken(userId));
      expect(refusedHere).toMatchObject({ status: 401 });
    } finally {
      await otherServer.stop();
    }
  });
});
