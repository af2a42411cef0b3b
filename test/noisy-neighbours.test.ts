// A SQL login cannot hold up anyone else: it may take every advisory lock it
// can, and exports, releasing dead workers and migrations still go on; and it
// cannot lift its own limits: whatever it sets for itself, the worker cancels
// its statements past its configured statement timeout, ends its idle
// transactions past its idle limit and its transactions past their limit.
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
let alice: string;
let bob: string;

// graphile-migrate's own key (pgReal.js), taken by `prompter migrate` under ours.
const GRAPHILE_MIGRATE_KEY = "4727445306447283";

async function usernameOf(userId: string): Promise<string> {
  return (await db.pool.query("select username from app_public.users where id = $1", [userId])).rows[0].username;
}

/** A new login of the user, connected over TCP with its password. */
async function loginOf(userId: string, statementTimeout = "1min"): Promise<{ login: string; client: pg.Client }> {
  const login = `noisy_${randomBytes(5).toString("hex")}`;
  logins.push(login);
  const { rows } = await db.pool.query<{ generated_password: string }>(
    "select generated_password from app_private.add_sql_login($1, $2, statement_timeout => $3)",
    [login, await usernameOf(userId), statementTimeout]);
  const url = new URL(db.url);
  url.username = login;
  url.password = rows[0].generated_password;
  const client = new pg.Client({ connectionString: url.toString() });
  client.on("error", () => {}); // an ended session also reports here
  await client.connect();
  clients.push(client);
  return { login, client };
}

beforeAll(async () => {
  alice = await createUser(db.pool);
  bob = await createUser(db.pool);
});

afterAll(async () => {
  await Promise.allSettled(clients.map((client) => client.end()));
  for (const login of logins) {
    await db.pool.query("call app_private.remove_sql_login($1, null)", [login])
      .catch((error) => console.error(`could not remove test login ${login}: ${error.message}`));
  }
});

/** An export request as the app makes it, giving up on any lock after 3 s instead of hanging. */
async function requestExportAsApp(userId: string): Promise<string> {
  const client = await db.pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true), set_config('lock_timeout', '3s', true)", [userId]);
    const { rows } = await client.query<{ id: string }>("select id from app_public.request_export('all')");
    await client.query("commit");
    return rows[0].id;
  } catch (error) {
    await client.query("rollback");
    throw error;
  } finally {
    client.release();
  }
}

describe("a SQL login holding every advisory lock it can take", () => {
  let holder: { login: string; client: pg.Client };
  const held = async () => {
    const { rows } = await db.pool.query("select count(*)::int as n from pg_locks l join pg_stat_activity a using (pid) where a.usename = $1 and l.locktype = 'advisory'", [holder.login]);
    return rows[0].n;
  };

  beforeAll(async () => {
    holder = await loginOf(alice);
    // The keys the service used to serialise on, for both users, and graphile-migrate's.
    await holder.client.query(
      `select pg_advisory_lock(hashtextextended('prompter.exports.rate', $1)), pg_advisory_lock(hashtextextended('prompter.exports.rate', $2)),
              pg_advisory_lock(hashtextextended('prompter.migrate', 0)), pg_advisory_lock(hashtextextended('prompter.apply_sql', 0)),
              pg_advisory_lock(hashtextextended('prompter.release_dead_workers', 0)), pg_advisory_lock($3::bigint)`,
      [alice, bob, GRAPHILE_MIGRATE_KEY]);
    // A transaction of its own left open on its user's export too: only that user's own row.
    expect(await held()).toBe(6);
  });

  it("delays nobody's export request", async () => {
    expect(await requestExportAsApp(alice)).toMatch(/^\d+$/);
    expect(await requestExportAsApp(bob)).toMatch(/^\d+$/);
  });

  it("cannot take another user's export rate lock, nor the service's process locks", async () => {
    await holder.client.query("begin");
    try {
      await holder.client.query("select app_hidden.lock_export_rate($1)", [bob]);
      const { rows } = await db.pool.query("select count(*)::int as n from app_private.export_rate_locks where user_id = $1", [bob]);
      // Bob's row exists from his request above; it must still be free to lock.
      expect(rows[0].n).toBe(1);
      const owner = await db.pool.connect();
      try {
        await owner.query("begin");
        const free = await owner.query("select from app_private.export_rate_locks where user_id = $1 for update nowait", [bob]).then(() => true, () => false);
        expect(free).toBe(true);
      } finally {
        await owner.query("rollback");
        owner.release();
      }
      const refused = await holder.client.query("select from app_private.process_locks for update").catch((error) => error);
      expect(refused.code).toBe("42501");
    } finally {
      await holder.client.query("rollback");
    }
  });

  it("delays nobody releasing a dead worker's jobs", async () => {
    await db.pool.query(
      "insert into app_private.worker_heartbeats (pool_id, hostname, pid, last_seen) values ('dead-pool', 'gone', 1, now() - interval '1 hour')");
    const { rows } = await db.pool.query("select pool_id from app_private.release_dead_workers(interval '1 minute')");
    expect(rows.map((row) => row.pool_id)).toEqual(["dead-pool"]);
  });

  it("delays no migration: the migration ends the login's session holding graphile-migrate's key", async () => {
    const ended = new Promise<{ code?: string }>((resolve) => holder.client.once("error", resolve));
    const outcome = await Promise.race([
      migrateDatabase(db.url).then(() => "migrated"),
      new Promise((resolve) => setTimeout(() => resolve("still waiting after 30 s"), 30_000)),
    ]);
    expect(outcome).toBe("migrated");
    expect((await ended).code).toBe("57P01");
    expect(await held()).toBe(0);
  }, 60_000);
});

describe("limits a SQL login sets for itself", () => {
  let dir: string;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  const LIMIT_SECONDS = 2;
  const CHECK_SECONDS = 1;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "prompter-noisy-"));
    worker = await startTestWorker(db.url, dir, { SQL_LOGIN_CHECK_INTERVAL: String(CHECK_SECONDS) });
  });
  afterAll(async () => {
    await worker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("cancels pg_sleep(600) of a login that set statement_timeout = 0, within its limit plus the check interval", async () => {
    const { login, client } = await loginOf(alice, `${LIMIT_SECONDS}s`);
    await client.query(`alter role ${login} set statement_timeout = 0`);
    await client.query(`alter role ${login} in database ${db.name} set idle_in_transaction_session_timeout = 0`);
    await client.query("set statement_timeout = 0");
    const started = performance.now();
    const error = await client.query("select pg_sleep(600)").catch((caught) => caught);
    const seconds = (performance.now() - started) / 1000;
    expect(error.code).toBe("57014");
    expect(seconds).toBeGreaterThanOrEqual(LIMIT_SECONDS);
    // Limit + interval, and as much again for a slow, shared machine.
    expect(seconds).toBeLessThan(2 * (LIMIT_SECONDS + CHECK_SECONDS));
    // The task logs once PostgreSQL has done what it asked.
    const logged = await waitUntil(async () => worker.lines.filter((line) => line.fields.login === login), (lines) => lines.length > 0, "the cancellation is logged");
    expect(logged).toEqual([expect.objectContaining({
      level: "warn",
      message: "SQL login statement cancelled: past its statement timeout",
      fields: expect.objectContaining({ login, reason: "statement_timeout" }),
    })]);
    const metrics = await worker.metrics.registry.getSingleMetricAsString("prompter_sql_login_cancellations_total");
    expect(metrics).toMatch(/reason="statement_timeout"} [1-9]/);
    // The session lives on: only the statement was cancelled.
    expect((await client.query("select 1 as one")).rows[0].one).toBe(1);

    const { rows } = await db.pool.query("select statement_timeout, settings_changed from app_private.list_sql_logins() where login = $1", [login]);
    expect(rows[0]).toEqual({ statement_timeout: `${LIMIT_SECONDS * 1000}ms`, settings_changed: true });
  }, 30_000);

  it("ends a session idle in a transaction past the login's idle limit", async () => {
    const { login, client } = await loginOf(bob);
    await db.pool.query("update app_private.sql_logins set idle_in_transaction_timeout = interval '2 s' where login = $1", [login]);
    await client.query("set idle_in_transaction_session_timeout = 0");
    const ended = new Promise<{ code?: string }>((resolve) => client.once("error", resolve));
    await client.query("begin");
    await client.query("select count(*) from app_public.prompts");
    expect((await ended).code).toBe("57P01");
    const logged = await waitUntil(async () => worker.lines.filter((line) => line.fields.login === login), (lines) => lines.length > 0, "the session's end is logged");
    expect(logged).toEqual([expect.objectContaining({
      message: "SQL login session ended: past its idle limit",
      fields: expect.objectContaining({ login, reason: "idle_in_transaction_timeout" }),
    })]);
  }, 30_000);

  it("ends a session whose transaction outlives the login's transaction limit, however short its statements and pauses", async () => {
    const { login, client } = await loginOf(alice, "5s");
    await db.pool.query("update app_private.sql_logins set idle_in_transaction_timeout = interval '5 s', transaction_timeout = interval '2 s' where login = $1", [login]);
    // Where PostgreSQL has transaction_timeout (17+), the login lifts it for itself: the worker still ends it.
    const { rows: [{ version }] } = await client.query("select current_setting('server_version_num')::int as version");
    if (version >= 170000) await client.query("set transaction_timeout = 0");
    const started = performance.now();
    await client.query("begin");
    // Each sleep is under the statement timeout, each pause under the idle limit.
    const looped = (async () => {
      for (let i = 0; i < 20; i++) {
        await client.query("select pg_sleep(0.5)");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return "ran 20 statements in one transaction";
    })().catch(() => "ended");
    expect(await looped).toBe("ended");
    const { rows: [{ sessions }] } = await db.pool.query("select count(*)::int as sessions from pg_stat_activity where usename = $1", [login]);
    expect(sessions).toBe(0);
    // Limit + interval, and as much again for a slow, shared machine.
    expect((performance.now() - started) / 1000).toBeLessThan(2 * (2 + CHECK_SECONDS));
    const logged = await waitUntil(async () => worker.lines.filter((line) => line.fields.login === login), (lines) => lines.length > 0, "the session's end is logged");
    expect(logged).toEqual([expect.objectContaining({
      message: "SQL login session ended: its transaction is past its transaction limit",
      fields: expect.objectContaining({ login, reason: "transaction_timeout" }),
    })]);
  }, 30_000);

  it("lists an untouched login's settings as configured", async () => {
    const { login } = await loginOf(bob, "45s");
    const { rows } = await db.pool.query("select statement_timeout, idle_in_transaction_timeout, transaction_timeout, settings_changed from app_private.list_sql_logins() where login = $1", [login]);
    expect(rows[0]).toEqual({ statement_timeout: "45000ms", idle_in_transaction_timeout: "600000ms", transaction_timeout: "600000ms", settings_changed: false });
  });
});
