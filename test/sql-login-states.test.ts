// The limits a SQL login was given (app_private.sql_logins) in every state its
// sessions can be in, whatever the login sets for itself: a statement running
// past the statement timeout is cancelled (the session stays), a session idle
// in a transaction, or in a transaction a failed statement aborted, past the
// idle limit is ended, and an idle session (no transaction) is left alone
// however long it idles. Each limit counts from when the statement or the idle
// spell began, not from when the session or its transaction began.
// Roles are cluster-wide, so the logins have random names and are removed afterwards.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { Log } from "../src/log.ts";
import { createMetrics } from "../src/metrics.ts";
import type { TaskContext } from "../src/task-context.ts";
import sqlLoginLimitsTask from "../src/tasks/sql_login_limits.ts";
import { createUser, useTestDatabase } from "./support/db.ts";

const db = useTestDatabase();
const PASSWORD = "sql-login-states-password-0123";
const LIMIT_SECONDS = 2;
const PAST_LIMIT_MS = LIMIT_SECONDS * 1000 + 700;
const logins: string[] = [];
const clients = new Set<pg.Client>();

/** A login whose configured limits are `statementTimeout` and `idleTimeout` (intervals). */
async function addLogin(limits: { statementTimeout: string; idleTimeout: string }): Promise<string> {
  const login = `sqlstate_${randomBytes(5).toString("hex")}`;
  logins.push(login);
  const user = await createUser(db.pool);
  const { rows: [{ username }] } = await db.pool.query("select username from app_public.users where id = $1", [user]);
  await db.pool.query("select app_private.add_sql_login($1, $2, $3)", [login, username, PASSWORD]);
  await db.pool.query("update app_private.sql_logins set statement_timeout = $2, idle_in_transaction_timeout = $3 where login = $1",
    [login, limits.statementTimeout, limits.idleTimeout]);
  return login;
}

/** A session of the login that has lifted PostgreSQL's own timeouts for itself; its pid. */
async function sessionOf(login: string): Promise<{ client: pg.Client; pid: number }> {
  const url = new URL(db.url);
  url.username = login;
  url.password = PASSWORD;
  const client = new pg.Client({ connectionString: url.toString() });
  client.on("error", () => {}); // an ended session reports here as well as on its query
  await client.connect();
  clients.add(client);
  await client.query("set statement_timeout = 0; set idle_in_transaction_session_timeout = 0");
  const { rows } = await client.query<{ pid: number }>("select pg_backend_pid() as pid");
  return { client, pid: rows[0].pid };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the worker's periodic check does now: (pid, reason, action, done) per session it acted on. */
async function enforce() {
  const { rows } = await db.pool.query<{ pid: number; reason: string; action: string; done: boolean }>(
    "select pid, reason, action, done from app_private.enforce_sql_login_limits()");
  return rows;
}

async function waitForState(pid: number, state: string) {
  for (let i = 0; i < 100; i++) {
    const { rows } = await db.pool.query("select state from pg_stat_activity where pid = $1", [pid]);
    if (rows[0]?.state === state) return;
    await sleep(50);
  }
  throw new Error(`session ${pid} never reached state ${state}`);
}

async function alive(pid: number) {
  return (await db.pool.query("select from pg_stat_activity where pid = $1", [pid])).rowCount === 1;
}

const byPid = <T extends { pid: number }>(rows: T[]) => [...rows].sort((a, b) => a.pid - b.pid);

afterEach(async () => {
  await Promise.allSettled([...clients].map((client) => client.end()));
  clients.clear();
});

afterAll(async () => {
  for (const login of logins) {
    await db.pool.query("call app_private.remove_sql_login($1, null)", [login])
      .catch((error) => console.error(`could not remove test login ${login}: ${error.message}`));
  }
});

describe("enforce_sql_login_limits", () => {
  it("cancels active statements past the statement timeout, counted from each statement's start; idle sessions are left alone", async () => {
    const login = await addLogin({ statementTimeout: `${LIMIT_SECONDS} seconds`, idleTimeout: "1 hour" });
    const plain = await sessionOf(login);
    const inTransaction = await sessionOf(login);
    const idle = await sessionOf(login);
    await inTransaction.client.query("begin; select 1");
    // Sessions and a transaction older than the statement timeout; their statements start now.
    await sleep(PAST_LIMIT_MS);
    const plainSleep = plain.client.query("select pg_sleep(60)").then(() => "finished", (error) => error.code);
    const inTransactionSleep = inTransaction.client.query("select pg_sleep(60)").then(() => "finished", (error) => error.code);
    await waitForState(plain.pid, "active");
    await waitForState(inTransaction.pid, "active");
    expect(await enforce()).toEqual([]);

    await sleep(PAST_LIMIT_MS);
    expect(byPid(await enforce())).toEqual(byPid([
      { pid: plain.pid, reason: "statement_timeout", action: "cancel", done: true },
      { pid: inTransaction.pid, reason: "statement_timeout", action: "cancel", done: true },
    ]));
    expect([await plainSleep, await inTransactionSleep]).toEqual(["57014", "57014"]);
    // Cancelled, not ended: the sessions go on.
    expect((await plain.client.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
    expect(await alive(inTransaction.pid)).toBe(true);
    expect((await idle.client.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
  });

  it("ends sessions idle in a transaction, or in an aborted one, past the idle limit, counted from when they fell idle", async () => {
    const login = await addLogin({ statementTimeout: "1 hour", idleTimeout: `${LIMIT_SECONDS} seconds` });
    const idleInTransaction = await sessionOf(login);
    const aborted = await sessionOf(login);
    const idle = await sessionOf(login);
    const busy = await sessionOf(login);
    // Sessions older than the idle limit; their transactions start now.
    await sleep(PAST_LIMIT_MS);
    await idleInTransaction.client.query("begin; select 1");
    await aborted.client.query("begin");
    expect((await aborted.client.query("select 1 / 0").catch((error) => error)).code).toBe("22012");
    // Within the statement timeout, however long it runs past the idle limit.
    const busySleep = busy.client.query("select pg_sleep(60)").then(() => "finished", (error) => error.code);
    await waitForState(idleInTransaction.pid, "idle in transaction");
    await waitForState(aborted.pid, "idle in transaction (aborted)");
    await waitForState(busy.pid, "active");
    expect(await enforce()).toEqual([]);

    await sleep(PAST_LIMIT_MS);
    expect(byPid(await enforce())).toEqual(byPid([
      { pid: idleInTransaction.pid, reason: "idle_in_transaction_timeout", action: "terminate", done: true },
      { pid: aborted.pid, reason: "idle_in_transaction_timeout", action: "terminate", done: true },
    ]));
    expect([await alive(idleInTransaction.pid), await alive(aborted.pid)]).toEqual([false, false]);
    expect((await idle.client.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
    expect(await alive(busy.pid)).toBe(true);
    await db.pool.query("select pg_cancel_backend($1)", [busy.pid]);
    expect(await busySleep).toBe("57014");
  });

  it("a session that stays idle (no transaction) far past both limits is never touched", async () => {
    const login = await addLogin({ statementTimeout: `${LIMIT_SECONDS} seconds`, idleTimeout: `${LIMIT_SECONDS} seconds` });
    const idle = await sessionOf(login);
    await idle.client.query("begin; select 1; commit");
    await waitForState(idle.pid, "idle");
    await sleep(PAST_LIMIT_MS);
    expect(await enforce()).toEqual([]);
    expect((await idle.client.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
  });
});

describe("the worker's sql_login_limits task", () => {
  it("acts on every session past its limit, and logs and counts each by reason", async () => {
    const login = await addLogin({ statementTimeout: `${LIMIT_SECONDS} seconds`, idleTimeout: `${LIMIT_SECONDS} seconds` });
    const busy = await sessionOf(login);
    const idleInTransaction = await sessionOf(login);
    const idle = await sessionOf(login);
    const busySleep = busy.client.query("select pg_sleep(60)").then(() => "finished", (error) => error.code);
    await idleInTransaction.client.query("begin; select 1");
    await waitForState(busy.pid, "active");
    await sleep(PAST_LIMIT_MS);

    const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
    const record = (level: string) => (fields: Record<string, unknown>, message: string) => void lines.push({ level, message, fields });
    const log: Log = { debug: record("debug"), info: record("info"), warn: record("warn"), error: record("error") };
    const metrics = createMetrics();
    await sqlLoginLimitsTask({}, undefined, { pool: db.pool, log, metrics } as TaskContext);

    expect(await busySleep).toBe("57014");
    expect([await alive(idleInTransaction.pid), await alive(idle.pid)]).toEqual([false, true]);
    expect(byPid(lines.map((line) => ({ pid: line.fields.pid as number, level: line.level, login: line.fields.login, reason: line.fields.reason }))))
      .toEqual(byPid([
        { pid: busy.pid, level: "warn", login, reason: "statement_timeout" },
        { pid: idleInTransaction.pid, level: "warn", login, reason: "idle_in_transaction_timeout" },
      ]));
    const counted = (await metrics.sqlLoginCancellations.get()).values.map((value) => [value.labels.reason, value.value]).sort();
    expect(counted).toEqual([["idle_in_transaction_timeout", 1], ["statement_timeout", 1]]);
  });
});
