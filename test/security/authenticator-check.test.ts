// app_private.ensure_authenticator (`npx prompter migrate`) makes the gateway's
// login or checks an existing one: every role that may do more than become the
// three API roles is refused with PRAUT and left as it was, whether it was made
// by a DBA (a superuser here) or by the owner; a role it makes itself passes its
// own check when migrate runs again. Roles are cluster-wide and other test files
// run at the same time, so every role has a random name and is dropped afterwards.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { withCredentials } from "../../src/db/embedded.ts";
import { TEST_OWNER } from "../support/credentials.ts";
import { asSuperuser, createDatabase, createUser, errorOf, useTestDatabase } from "../support/db.ts";

const db = useTestDatabase();
const PASSWORD = "authenticator-check-password-0123";
const roles: string[] = [];
let otherDatabase: Awaited<ReturnType<typeof createDatabase>>;

function newRoleName(): string {
  const name = `authcheck_${randomBytes(5).toString("hex")}`;
  roles.push(name);
  return name;
}

/** A role made by the DBA with `attributes` (and `then`, more statements naming it as %I). */
async function dbaRole(attributes: string, ...then: string[]): Promise<string> {
  const name = newRoleName();
  await asSuperuser(async (client) => {
    await client.query(`create role ${name} ${attributes}`);
    for (const statement of then) await client.query(statement.replaceAll("%I", name));
  }, db.name);
  return name;
}

const ensure = (login: string) => db.pool.query("select app_private.ensure_authenticator($1, $2)", [login, PASSWORD]);

/** What PostgreSQL says of the role: attributes, memberships and the databases it was granted CONNECT on. */
async function describeRole(name: string) {
  const { rows } = await db.pool.query(
    `select r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication, r.rolbypassrls,
            coalesce((select array_agg(g.rolname::text order by g.rolname) from pg_auth_members m join pg_roles g on g.oid = m.roleid where m.member = r.oid), '{}') as member_of,
            coalesce((select array_agg(d.datname::text order by d.datname) from pg_database d, aclexplode(d.datacl) acl where acl.grantee = r.oid and acl.privilege_type = 'CONNECT'), '{}') as connect_granted_on
       from pg_roles r where r.rolname = $1`, [name]);
  return rows[0];
}

beforeAll(async () => {
  otherDatabase = await createDatabase();
});

afterAll(async () => {
  // Registered after useTestDatabase's hooks, so this runs while the database is still there.
  await asSuperuser(async (client) => {
    for (const name of roles) {
      await client.query(`drop owned by ${name}`).catch(() => {});
      await client.query(`drop role if exists ${name}`).catch((error) => console.error(`could not drop ${name}: ${error.message}`));
    }
  }, db.name);
  await otherDatabase?.drop();
});

describe("an existing role", () => {
  it.each([
    ["a superuser", "login noinherit superuser"],
    ["an INHERIT login", "login inherit"],
    ["a CREATEROLE login", "login noinherit createrole"],
    ["a CREATEDB login", "login noinherit createdb"],
    ["a REPLICATION login", "login noinherit replication"],
    ["a BYPASSRLS login", "login noinherit bypassrls"],
  ])("is refused when it is %s, and keeps its attributes and memberships", async (_kind, attributes) => {
    const name = await dbaRole(attributes);
    const before = await describeRole(name);
    const refused = await errorOf(ensure(name));
    expect(refused).toMatchObject({ code: "PRAUT", message: expect.stringContaining("may do more than an authenticator should") });
    expect(await describeRole(name)).toEqual(before);
    expect(before.member_of).toEqual([]);
  });

  it.each([
    ["another prompter role", "app_auditor"],
    ["a predefined role", "pg_read_all_data"],
    ["a role of the DBA's", null],
  ])("is refused when it is a member of %s as well", async (_kind, granted) => {
    const group = granted ?? await dbaRole("nologin");
    const name = await dbaRole("login noinherit", `grant ${group} to %I`);
    const refused = await errorOf(ensure(name));
    expect(refused).toMatchObject({ code: "PRAUT", message: expect.stringContaining(`is a member of ${group} as well`) });
    expect((await describeRole(name)).member_of).toEqual([group]);
  });

  it("is refused when it is another database's authenticator, and gets no CONNECT here", async () => {
    const name = await dbaRole("login noinherit", `grant connect on database ${otherDatabase.name} to %I`);
    const refused = await errorOf(ensure(name));
    expect(refused).toMatchObject({ code: "PRAUT", message: expect.stringContaining(`authenticator of database ${otherDatabase.name}`) });
    expect((await describeRole(name)).connect_granted_on).toEqual([otherDatabase.name]);
    // And the other database's own authenticator, made there by ensure_authenticator.
    const theirs = new URL(otherDatabase.authUrl).username;
    expect(await errorOf(ensure(theirs))).toMatchObject({ code: "PRAUT", message: expect.stringContaining(`authenticator of database ${otherDatabase.name}`) });
  });

  it("is refused when it is the owner, or the login running migrate", async () => {
    const owner = (await db.pool.query("select current_user as name")).rows[0].name as string;
    expect(await errorOf(ensure(owner))).toMatchObject({ code: "PRAUT", message: expect.stringContaining("not the owner's") });
  });

  it("is refused when it is a SQL login, even one that would pass every other check", async () => {
    const user = await createUser(db.pool);
    const name = await dbaRole("login noinherit");
    await db.pool.query("insert into app_private.sql_logins (login, user_id) values ($1, $2)", [name, user]);
    expect(await errorOf(ensure(name))).toMatchObject({ code: "PRAUT", message: expect.stringContaining("or a SQL login") });
    expect((await describeRole(name)).member_of).toEqual([]);
    // And one made the usual way (`prompter sql-user add`).
    const login = newRoleName();
    const { rows: [{ username }] } = await db.pool.query("select username from app_public.users where id = $1", [user]);
    await db.pool.query("select app_private.add_sql_login($1, $2, $3)", [login, username, PASSWORD]);
    expect(await errorOf(ensure(login))).toMatchObject({ code: "PRAUT" });
  });

  it("a plain NOINHERIT login is taken, and gets the three API roles and CONNECT here", async () => {
    // From PostgreSQL 16 the owner may set the password of a role the DBA made only with ADMIN on it.
    const name = await dbaRole("login noinherit", `grant %I to ${TEST_OWNER} with admin option`);
    await ensure(name);
    expect(await describeRole(name)).toMatchObject({ member_of: ["app_admin", "app_anonymous", "app_user"], connect_granted_on: [db.name] });
  });
});

describe("a new role", () => {
  it("is made a plain NOINHERIT login of the three API roles, for this database only, and passes its own check again", async () => {
    const name = newRoleName();
    await ensure(name);
    expect(await describeRole(name)).toEqual({
      rolsuper: false, rolinherit: false, rolcreaterole: false, rolcreatedb: false, rolcanlogin: true, rolreplication: false, rolbypassrls: false,
      member_of: ["app_admin", "app_anonymous", "app_user"], connect_granted_on: [db.name],
    });
    await ensure(name);
    const client = new pg.Client({ connectionString: withCredentials(db.url, name, PASSWORD) });
    await client.connect();
    try {
      expect((await client.query("select current_user as name")).rows[0].name).toBe(name);
      expect((await errorOf(client.query("select count(*) from app_public.prompts"))).code).toBe("42501");
    } finally {
      await client.end();
    }
    // The other database's migrate now refuses it: one authenticator per database.
    const elsewhere = new pg.Client({ connectionString: otherDatabase.url });
    await elsewhere.connect();
    try {
      expect(await errorOf(elsewhere.query("select app_private.ensure_authenticator($1, $2)", [name, PASSWORD])))
        .toMatchObject({ code: "PRAUT", message: expect.stringContaining(`authenticator of database ${db.name}`) });
    } finally {
      await elsewhere.end();
    }
  });

  it.each([
    ["the owner's name", async () => (await db.pool.query("select current_user as name")).rows[0].name as string, "PRAUT"],
    ["a name starting with app_", async () => "app_gateway", "PRLNM"],
    ["a name starting with pg_", async () => "pg_gateway", "PRLNM"],
    ["an upper-case name", async () => "Gateway", "PRLNM"],
  ])("is not made under %s", async (_kind, nameOf, code) => {
    const name = await nameOf();
    const roleCount = async () => (await db.pool.query("select from pg_roles where rolname = $1", [name])).rowCount;
    const before = await roleCount();
    expect((await errorOf(ensure(name))).code).toBe(code);
    expect(await roleCount()).toBe(before);
  });
});
