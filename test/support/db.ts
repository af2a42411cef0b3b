// A database of the test file's own, cloned from the migrated template, and
// helpers to act inside a rolled-back transaction as anonymous, a user or an admin.
import { afterAll, beforeAll, inject } from "vitest";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { withCredentials, withDatabaseName } from "../../src/db/embedded.ts";
import { authenticatorOf, TEST_PASSWORD } from "./credentials.ts";

export type Actor =
  | { role: "app_anonymous" }
  | { role: "app_user" | "app_admin"; userId: string | number };

export function urlFor(database: string): string {
  const url = new URL(inject("serverUrl"));
  url.pathname = `/${database}`;
  return url.toString();
}

/** The authenticator's URL for a test database's owner URL: what the gateway logs in with. */
export function authUrlFor(ownerUrl: string): string {
  return withCredentials(ownerUrl, authenticatorOf(new URL(ownerUrl).pathname.slice(1)), TEST_PASSWORD);
}

/** Work as the superuser (in the maintenance database, or `database`), for what only a DBA does. */
export async function asSuperuser<T>(work: (client: pg.Client) => Promise<T>, database?: string): Promise<T> {
  const client = new pg.Client({ connectionString: database ? withDatabaseName(inject("superuserUrl"), database) : inject("superuserUrl") });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A database cloned from the template by the (non-superuser) owner, with an authenticator of its own. */
export async function createDatabase(): Promise<{ name: string; url: string; authUrl: string; drop(): Promise<void> }> {
  const name = `prompter_test_${randomBytes(5).toString("hex")}`;
  const owner = new pg.Client({ connectionString: inject("serverUrl") });
  await owner.connect();
  await owner.query(`create database ${name} template ${inject("templateDatabase")}`);
  await owner.end();
  const url = urlFor(name);
  const inDatabase = new pg.Client({ connectionString: url });
  await inDatabase.connect();
  await inDatabase.query("select app_private.ensure_authenticator($1, $2)", [authenticatorOf(name), TEST_PASSWORD]);
  await inDatabase.end();
  return {
    name,
    url,
    authUrl: authUrlFor(url),
    drop: () =>
      asSuperuser(async (client) => {
        await client.query(`drop database if exists ${name} with (force)`);
        await client.query(`drop role if exists ${authenticatorOf(name)}`);
      }),
  };
}

/** Registers hooks that give the calling test file its own database. */
export function useTestDatabase() {
  const context = {} as { url: string; authUrl: string; name: string; pool: pg.Pool };
  let drop: () => Promise<void>;
  let closing = false;
  beforeAll(async () => {
    const database = await createDatabase();
    drop = database.drop;
    context.url = database.url;
    context.authUrl = database.authUrl;
    context.name = database.name;
    context.pool = new pg.Pool({ connectionString: database.url, max: 4 });
    // pool.end() resolves before its clients' sockets close, and the drop (with force)
    // may terminate a backend a client is still leaving: the pool's error then is no failure.
    context.pool.on("error", (error) => {
      if (!closing) throw error;
    });
  });
  afterAll(async () => {
    closing = true;
    await context.pool?.end();
    await drop?.();
  });
  return context;
}

/** Creates a user directly (no bcrypt cost); returns its id. */
export async function createUser(pool: pg.Pool, options: { admin?: boolean; username?: string } = {}): Promise<string> {
  const username = options.username ?? `user_${randomBytes(4).toString("hex")}`;
  const { rows } = await pool.query<{ id: string }>(
    "insert into app_public.users (username, is_admin) values ($1, $2) returning id",
    [username, options.admin ?? false],
  );
  return rows[0].id;
}

/** Runs `work` as the actor inside a transaction that is always rolled back. */
export async function actAs<T>(pool: pg.Pool, actor: Actor, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true)", [
      actor.role,
      "userId" in actor ? String(actor.userId) : "",
    ]);
    return await work(client);
  } finally {
    await client.query("rollback").catch(() => {});
    client.release();
  }
}

/** The error a query fails with (the test fails if it succeeds). */
export async function errorOf(promise: Promise<unknown>): Promise<{ code: string; constraint?: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { code: string; constraint?: string; message: string };
  }
  throw new Error("expected the query to fail, but it succeeded");
}
