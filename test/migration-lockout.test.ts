// No SQL login can hold a migration up: while `prompter migrate` (or worker, or
// start) migrates, every SQL login of the database is kept out (its CONNECT
// revoked, its sessions ended), so none can take graphile-migrate's advisory
// key, even by looping on pg_try_advisory_lock to grab it the moment its holder
// is ended. Logins are let back in afterwards, also when the migration failed,
// and, when the migrating process died, by the worker's limits task.
// Logins are cluster-wide: random names, removed afterwards.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { migrateDatabase } from "../src/db/migrate.ts";
import { startTestWorker, waitUntil } from "./exports/support.ts";
import { createUser, useTestDatabase } from "./support/db.ts";

const db = useTestDatabase();
const logins: string[] = [];
const clients: pg.Client[] = [];
let username: string;

// graphile-migrate's own key (pgReal.js).
const GRAPHILE_MIGRATE_KEY = "4727445306447283";

/** A new login of the user; returns its connection URL. */
async function newLogin(): Promise<{ login: string; url: string }> {
  const login = `lockout_${randomBytes(5).toString("hex")}`;
  logins.push(login);
  const { rows } = await db.pool.query<{ generated_password: string }>(
    "select generated_password from app_private.add_sql_login($1, $2)", [login, username]);
  const url = new URL(db.url);
  url.username = login;
  url.password = rows[0].generated_password;
  return { login, url: url.toString() };
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {}); // an ended session also reports here
  await client.connect();
  clients.push(client);
  return client;
}

/** Whether the login may connect now: the error's code when it may not. */
async function connects(url: string): Promise<true | string> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    return true;
  } catch (error) {
    return (error as { code: string }).code;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * The attack: one session holds graphile-migrate's key, two more loop on
 * pg_try_advisory_lock of it, to take it as soon as its holder is ended.
 */
async function holdAndGrabTheMigrationKey(url: string): Promise<{ stop: () => Promise<void> }> {
  const holder = await connect(url);
  await holder.query("select pg_advisory_lock($1::bigint)", [GRAPHILE_MIGRATE_KEY]);
  let stopped = false;
  const loops = await Promise.all([connect(url), connect(url)]).then((grabbers) => grabbers.map(async (grabber) => {
    while (!stopped) {
      const ok = await grabber.query("select pg_try_advisory_lock($1::bigint) as got", [GRAPHILE_MIGRATE_KEY]).then(() => true, () => false);
      if (!ok) {
        // Ended: come back at once, as an attacker would, for as long as it may connect.
        if (stopped || (await connects(url)) !== true) return;
        grabber = await connect(url);
      }
    }
  }));
  return { stop: async () => { stopped = true; await Promise.all(loops); } };
}

beforeAll(async () => {
  const userId = await createUser(db.pool);
  username = (await db.pool.query("select username from app_public.users where id = $1", [userId])).rows[0].username;
});

afterAll(async () => {
  await Promise.allSettled(clients.map((client) => client.end()));
  // Whatever a failed test left kept out is let back in, so the logins can be removed.
  await db.pool.query("select app_private.restore_sql_login_access()").catch(() => {});
  for (const login of logins) {
    await db.pool.query("call app_private.remove_sql_login($1, null)", [login])
      .catch((error) => console.error(`could not remove test login ${login}: ${error.message}`));
  }
});

describe("SQL logins holding and grabbing graphile-migrate's key", () => {
  it("fail no migration, three times of three, and may connect again afterwards", async () => {
    const { url } = await newLogin();
    for (let round = 1; round <= 3; round++) {
      const attack = await holdAndGrabTheMigrationKey(url);
      try {
        await expect(migrateDatabase(db.url).then(() => `round ${round} migrated`)).resolves.toBe(`round ${round} migrated`);
      } finally {
        await attack.stop();
      }
      expect(await connects(url)).toBe(true);
    }
    expect((await db.pool.query("select count(*)::int as n from app_private.sql_login_lockouts")).rows[0].n).toBe(0);
  }, 120_000);
});

describe("graphile-worker's own migration on worker start", () => {
  it("uses no advisory lock, only its own tables, which are out of a SQL login's reach", async () => {
    const { url } = await newLogin();
    const login = await connect(url);
    await login.query("begin");
    for (const table of ["graphile_worker.migrations", "graphile_worker._private_jobs"]) {
      const error = await login.query(`lock table ${table} in access share mode`).then(() => "locked", (caught) => caught.code);
      expect(error).toBe("42501");
      await login.query("rollback");
      await login.query("begin");
    }
    await login.query("rollback");
  });
});

describe("a SQL login's transaction left open on a table the migration alters", () => {
  it("neither stalls the migration nor, queued behind it, the app's requests", async () => {
    const { url } = await newLogin();
    const reader = await connect(url);
    await reader.query("begin");
    await reader.query("select count(*) from app_public.prompts");
    const userId = await createUser(db.pool);
    let migrating = true;
    const migrated = Promise.race([
      migrateDatabase(db.url).then(() => "migrated"),
      new Promise((resolve) => setTimeout(() => resolve("still waiting after 30 s"), 30_000)),
    ]).finally(() => { migrating = false; });
    // What an API request does meanwhile, giving up on a lock after 3 s as the gateway does (LOCK_TIMEOUT).
    const requests: string[] = [];
    do {
      const client = await db.pool.connect();
      try {
        await client.query("begin");
        await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true), set_config('lock_timeout', '3s', true)", [userId]);
        requests.push(await client.query("select count(*) from app_public.prompts").then(() => "answered", (error) => error.code));
      } finally {
        await client.query("rollback");
        client.release();
      }
    } while (migrating);
    expect(await migrated).toBe("migrated");
    expect(new Set(requests)).toEqual(new Set(["answered"]));
  }, 60_000);
});

describe("a migration that dies with SQL logins kept out", () => {
  let dir: string;
  let worker: Awaited<ReturnType<typeof startTestWorker>> | undefined;
  afterAll(async () => {
    await worker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("keeps them out only while it lives: then the worker's limits task lets them back in", async () => {
    const { login, url } = await newLogin();
    // What migrateDatabase does before migrating, by hand, so the process can "die" in between.
    const migrating = await connect(db.url);
    await migrating.query("begin");
    await migrating.query("select from app_private.process_locks where name = 'migrate' for update");
    await db.pool.query("call app_private.lock_out_sql_logins(null, null)");
    expect(await connects(url)).toBe("42501"); // permission denied for database
    // Only logins: the owner, a member of every login, is not one of them.
    const { rows: [{ owner_listed: ownerListed }] } = await db.pool.query(
      "select exists (select from app_private.list_sql_logins() where login = current_user) as owner_listed");
    expect(ownerListed).toBe(false);

    // A login added meanwhile waits with the others.
    const added = await newLogin();
    expect(await connects(added.url)).toBe("42501");
    // Nobody lets them in while the migration lives.
    expect((await db.pool.query("select * from app_private.restore_sql_login_access()")).rows).toEqual([]);
    expect(await connects(url)).toBe("42501");

    // The migrating process dies: its session ends without restoring anything.
    (migrating as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    dir = await mkdtemp(path.join(tmpdir(), "prompter-lockout-"));
    worker = await startTestWorker(db.url, dir, { SQL_LOGIN_CHECK_INTERVAL: "1" });
    await waitUntil(() => connects(url), (outcome) => outcome === true, "the login may connect again");
    expect(await connects(added.url)).toBe(true);
    const logged = await waitUntil(async () => worker!.lines.filter((line) => String(line.message).startsWith("SQL logins let back in")), (lines) => lines.length > 0, "logged");
    expect(logged[0].fields.logins).toEqual(expect.arrayContaining([login, added.login]));
  }, 60_000);
});
