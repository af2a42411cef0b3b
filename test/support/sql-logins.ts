// The SQL login tests' setup (sql-users.test.ts, sql-user-admin.test.ts): a
// database with alice and bob (plain users with demo rows and an export each)
// and carol (an admin), a login for alice and one for carol, and helpers to
// add, connect as and remove logins. Roles are cluster-wide and other test
// files run at the same time, so every login has a random name and is removed
// afterwards.
import { afterAll, afterEach, beforeAll } from "vitest";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { createUser, useTestDatabase } from "./db.ts";

export interface LoginCredentials {
  login: string;
  password: string;
}

export function useSqlLogins() {
  const db = useTestDatabase();
  const logins: string[] = [];
  const clients = new Set<pg.Client>();

  function newLoginName(): string {
    const login = `sqltest_${randomBytes(5).toString("hex")}`;
    logins.push(login);
    return login;
  }

  async function addLogin(username: string, admin = false): Promise<LoginCredentials> {
    const login = newLoginName();
    const { rows } = await db.pool.query<{ generated_password: string }>(
      "select generated_password from app_private.add_sql_login($1, $2, is_admin => $3)", [login, username, admin]);
    return { login, password: rows[0].generated_password };
  }

  function loginUrl(login: string, password: string): string {
    const url = new URL(db.url);
    url.username = login;
    url.password = password;
    return url.toString();
  }

  /** A session of the login over TCP, authenticated with its password (scram on the embedded server). */
  async function connectAs(credentials: LoginCredentials): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: loginUrl(credentials.login, credentials.password) });
    // A terminated session reports on the client as well as on its query.
    client.on("error", () => {});
    await client.connect();
    clients.add(client);
    client.on("end", () => clients.delete(client));
    return client;
  }

  async function removeLogin(login: string): Promise<number> {
    const { rows } = await db.pool.query<{ ended_sessions: number }>("call app_private.remove_sql_login($1, null)", [login]);
    return rows[0].ended_sessions;
  }

  async function roleExists(login: string): Promise<boolean> {
    const { rowCount } = await db.pool.query("select from pg_roles where rolname = $1", [login]);
    return rowCount === 1;
  }

  /** As the app (the gateway's way): the user in the jwt claim, committed. */
  async function requestExportAsApp(userId: string): Promise<void> {
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      await client.query("select set_config('jwt.claims.user_id', $1, true)", [userId]);
      await client.query("select app_public.request_export('all')");
      await client.query("commit");
    } finally {
      client.release();
    }
  }

  const people = {} as { alice: string; bob: string; carol: string; aliceLogin: LoginCredentials; carolLogin: LoginCredentials };

  beforeAll(async () => {
    people.alice = await createUser(db.pool);
    people.bob = await createUser(db.pool);
    people.carol = await createUser(db.pool, { admin: true });
    await db.pool.query("select app_private.generate_demo($1, 2), app_private.generate_demo($2, 3)", [people.alice, people.bob]);
    await requestExportAsApp(people.alice);
    await requestExportAsApp(people.bob);
    people.aliceLogin = await addLogin(await usernameOf(people.alice));
    people.carolLogin = await addLogin(await usernameOf(people.carol), true);
  });

  async function usernameOf(userId: string): Promise<string> {
    return (await db.pool.query("select username from app_public.users where id = $1", [userId])).rows[0].username;
  }

  // Each login may hold only a few connections.
  afterEach(async () => {
    await Promise.allSettled([...clients].map((client) => client.end()));
  });

  afterAll(async () => {
    // Registered after useTestDatabase's hooks, so this runs while the database is
    // still there; it never throws, since a failing hook would keep that database.
    for (const login of logins) {
      await dropLogin(login).catch((error) => console.error(`could not drop test login ${login}: ${error.message}`));
    }
  });

  async function dropLogin(login: string): Promise<void> {
    if (!(await roleExists(login))) return;
    await removeLogin(login).catch(async () => {
      await db.pool.query(`drop owned by ${login}`);
      await db.pool.query(`drop role ${login}`);
    });
  }
  return { db, people, logins, newLoginName, addLogin, loginUrl, connectAs, removeLogin, roleExists, requestExportAsApp, usernameOf };
}
