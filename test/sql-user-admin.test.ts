// Adding and removing read-only database logins, in SQL and through
// `npx prompter sql-user`: the names and roles refused, the sessions a removal
// ends, and the CLI's answers.
import { beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { asSuperuser, errorOf } from "./support/db.ts";
import { type LoginCredentials, useSqlLogins } from "./support/sql-logins.ts";

const { db, people, newLoginName, addLogin, connectAs, removeLogin, roleExists, usernameOf } = useSqlLogins();
let alice: string;
let bob: string;
let aliceLogin: LoginCredentials;
let carolLogin: LoginCredentials;
beforeAll(() => ({ alice, bob, aliceLogin, carolLogin } = people));
const aliceName = () => usernameOf(alice);

describe("adding and removing logins", () => {
  it.each([
    ["an existing role", "postgres", {}, "PRLTK"],
    ["an app role", "app_user", {}, "PRLTK"],
    ["the gateway's role", "authenticator", {}, "PRLTK"],
    ["a name that is no plain identifier", "Robert'); drop table x; --", {}, "PRLNM"],
    ["a name in upper case", "Analyst", {}, "PRLNM"],
    ["a reserved prefix", "pg_analyst", {}, "PRLNM"],
    ["a reserved name", "public", {}, "PRLNM"],
    ["an unknown user", null, { username: "nobody_at_all" }, "PRNFD"],
    ["--admin for a user who is no admin", null, { admin: true }, "PRADM"],
    ["a short password", null, { password: "short" }, "PRWKP"],
    ["no connections", null, { limit: 0 }, "PRARG"],
    ["a timeout that is no duration", null, { timeout: "soon" }, "PRARG"],
    ["a timeout of zero", null, { timeout: "0s" }, "PRARG"],
  ] as const)("refuses %s", async (_, fixedLogin, options: { username?: string; admin?: boolean; password?: string; limit?: number; timeout?: string }, code) => {
    const login = fixedLogin ?? newLoginName();
    const existed = await roleExists(login);
    const error = await errorOf(db.pool.query(
      "select * from app_private.add_sql_login($1, $2, $3, $4, $5, $6)",
      [login, options.username ?? await aliceName(), options.password ?? null, options.admin ?? false, options.limit ?? 5, options.timeout ?? "1min"]));
    expect(error.code).toBe(code);
    expect(await roleExists(login)).toBe(existed);
    expect((await db.pool.query("select count(*)::int from app_private.sql_logins where login = $1", [login])).rows[0].count).toBe(0);
  });

  it("refuses a login name that is taken", async () => {
    const error = await errorOf(db.pool.query("select * from app_private.add_sql_login($1, $2)", [aliceLogin.login, await aliceName()]));
    expect(error.code).toBe("PRLTK");
  });

  it.each(["postgres", "app_reader", "authenticator", "sqltest_never_made"])("removes only its own logins, not %s", async (role) => {
    const existed = await roleExists(role);
    expect((await errorOf(removeLogin(role))).code).toBe("PRNFD");
    expect(await roleExists(role)).toBe(existed);
  });

  /**
   * A login role in reach of app_reader through a SQL login, as the owner is
   * (add_sql_login makes it a member of each login): made by the DBA, since
   * the owner is every test database's and must never be touched here.
   */
  async function withLookalike(test: (role: string) => Promise<void>): Promise<void> {
    const role = `sqltest_lookalike_${randomBytes(5).toString("hex")}`;
    await asSuperuser(async (su) => {
      await su.query(`create role ${role} login inherit password '${randomBytes(12).toString("hex")}'`);
      await su.query(`grant ${aliceLogin.login} to ${role}`);
      await su.query(`grant connect on database ${db.name} to ${role}`);
    }, db.name);
    try {
      await test(role);
    } finally {
      await asSuperuser(async (su) => {
        await su.query(`drop owned by ${role}`);
        await su.query(`drop role ${role}`);
      }, db.name);
    }
  }
  const owner = () => decodeURIComponent(new URL(db.url).username);
  const listedLogins = async () => (await db.pool.query<{ login: string }>("select login from app_private.list_sql_logins()")).rows.map((row) => row.login);

  it("lists only SQL logins: not the owner, nor any role that reaches app_reader through a login", async () => {
    await withLookalike(async (lookalike) => {
      expect((await db.pool.query("select pg_has_role($1, 'app_reader', 'usage') as reads", [lookalike])).rows[0].reads).toBe(true);
      const listed = await listedLogins();
      expect(listed).toEqual(expect.arrayContaining([aliceLogin.login, carolLogin.login]));
      expect(listed.filter((login) => login === owner() || login === lookalike)).toEqual([]);
    });
  });

  it("refuses to remove a role that is no SQL login, such as the owner, and changes nothing", async () => {
    await withLookalike(async (lookalike) => {
      expect((await errorOf(removeLogin(lookalike))).code).toBe("PRNFD");
      const { rows: [role] } = await db.pool.query("select rolcanlogin from pg_roles where rolname = $1", [lookalike]);
      expect(role).toEqual({ rolcanlogin: true });
    });
    const error = await errorOf(removeLogin(owner()));
    expect(error).toMatchObject({ code: "PRNFD", message: expect.stringContaining(`There is no SQL login "${owner()}"`) });
    expect((await db.pool.query("select rolcanlogin from pg_roles where rolname = current_user")).rows[0]).toEqual({ rolcanlogin: true });
  });

  it("ends the open sessions of a removed login, which can no longer connect", async () => {
    const bobLogin = await addLogin(await usernameOf(bob));
    const busy = await connectAs(bobLogin);
    const idle = await connectAs(bobLogin);
    const idleEnded = new Promise<{ code?: string }>((resolve) => idle.once("error", resolve));
    const running = errorOf(busy.query("select pg_sleep(25)"));
    // Wait until the query runs, so the session is certainly open.
    await expect.poll(async () => (await db.pool.query(
      "select count(*)::int from pg_stat_activity where usename = $1 and wait_event = 'PgSleep'", [bobLogin.login])).rows[0].count).toBe(1);

    expect(await removeLogin(bobLogin.login)).toBe(2);
    expect((await running).code).toBe("57P01");
    expect((await idleEnded).code).toBe("57P01");
    expect(await roleExists(bobLogin.login)).toBe(false);
    const refused = await errorOf(connectAs(bobLogin));
    // 28000 (no such role) under trust auth, 28P01 under scram: either way, class 28.
    expect(refused.code).toMatch(/^28/);
    expect((await db.pool.query("select count(*)::int from app_private.list_sql_logins() where login = $1", [bobLogin.login])).rows[0].count).toBe(0);
  });
});

describe("npx prompter sql-user", () => {
  const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
  function prompter(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = execFile(process.execPath, [cli, ...args], { env: { ...process.env, DATABASE_URL: db.url } },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }));
      child.stdin!.end(stdin ?? "");
    });
  }

  it("adds a login with a password from stdin, lists it and removes it", async () => {
    const login = newLoginName();
    const password = `piped-${randomBytes(9).toString("hex")}`;
    const added = await prompter(["sql-user", "add", login, "--as", await aliceName(), "--statement-timeout", "30s"], `${password}\n`);
    expect(added.stderr).toBe("");
    expect(added.stdout).toContain(`postgresql://${login}:<password>@`);
    expect(added.stdout).not.toContain(password);
    const client = await connectAs({ login, password });
    expect((await client.query("select current_setting('statement_timeout') as t")).rows[0].t).toBe("30s");
    await client.end();

    const listed = await prompter(["sql-user", "list"]);
    expect(listed.stdout).toMatch(new RegExp(`^${login}\\s+${await aliceName()}\\s+own rows\\s+5\\s+30000ms`, "m"));

    const removed = await prompter(["sql-user", "remove", login]);
    expect(removed).toMatchObject({ code: 0, stdout: `Removed SQL login "${login}"; ended 0 open session(s).\n` });
    expect(await roleExists(login)).toBe(false);
  });

  it("generates a password when none is piped and prints it, once", async () => {
    const login = newLoginName();
    const added = await prompter(["sql-user", "add", login, "--as", await aliceName()]);
    const password = /^Password \(shown only this once\): (\S+)$/m.exec(added.stdout)?.[1];
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(added.stdout.split(password!).length).toBe(2);
    expect((await prompter(["sql-user", "list"])).stdout).not.toContain(password);
    const client = await connectAs({ login, password: password! });
    expect((await client.query("select app_public.current_user_id()::text as id")).rows[0].id).toBe(alice);
  });

  it("lists no owner, and refuses to remove it with a message, not a stack trace", async () => {
    const owner = decodeURIComponent(new URL(db.url).username);
    const listed = await prompter(["sql-user", "list"]);
    expect(listed.stdout).toMatch(new RegExp(`^${aliceLogin.login}\\s`, "m"));
    expect(listed.stdout).not.toContain(owner);
    expect(listed.stdout).not.toContain("deleted user");
    const refused = await prompter(["sql-user", "remove", owner]);
    expect(refused).toEqual({
      code: 2,
      stdout: "",
      stderr: `prompter sql-user: There is no SQL login "${owner}": only the logins sql-user list shows (made by sql-user add) can be removed, and nothing was changed.\n`,
    });
  });

  it("reports the schema's refusals without a stack trace", async () => {
    const refused = await prompter(["sql-user", "add", "postgres", "--as", await aliceName()]);
    expect(refused).toEqual({ code: 2, stdout: "", stderr: 'prompter sql-user: There is already a database role named "postgres"; choose another login name.\n' });
  });
});
