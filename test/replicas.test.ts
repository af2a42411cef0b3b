// Exports read from a real streaming standby (REPLICA_DATABASE_URL), never
// older than their request, and a standby that lags or stops costs no export:
// the work moves to the primary. Which server ran an export's COPY is read
// from each server's statement log.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { migrateDatabase } from "../src/db/migrate.ts";
import { caughtUp, startPrimaryAndStandby } from "./support/standby.ts";
import { exportContents, requestExport, startTestWorker, waitForExport, waitUntil, type SignedIn } from "./exports/support.ts";
import { signTestToken, startServer } from "./support/server.ts";

const OWNER = "prompter_owner";
const AUTHENTICATOR = "prompter_authenticator";
const PASSWORD = "replica-test-password-0123456789";
let pair: Awaited<ReturnType<typeof startPrimaryAndStandby>>;
let ownerUrl: string;
let standbyOwnerUrl: string;
let pool: pg.Pool;
let exportDir: string;
let alice: SignedIn;

beforeAll(async () => {
  pair = await startPrimaryAndStandby(inject("superuserUrl"), 56000 + 2 * Math.floor(Math.random() * 1000));
  const superuser = new pg.Client({ connectionString: pair.primary.url("postgres") });
  await superuser.connect();
  await superuser.query(`create role ${OWNER} login createrole createdb password '${PASSWORD}'`);
  await superuser.query(`create database prompter owner ${OWNER}`);
  await superuser.end();
  ownerUrl = pair.primary.url("prompter", OWNER, PASSWORD);
  standbyOwnerUrl = pair.standby.url("prompter", OWNER, PASSWORD);
  await migrateDatabase(ownerUrl, { authenticatorUrl: pair.primary.url("prompter", AUTHENTICATOR, PASSWORD) });
  pool = new pg.Pool({ connectionString: ownerUrl, max: 4 });
  const { rows } = await pool.query<{ id: string }>("insert into app_public.users (username) values ('alice') returning id");
  alice = { role: "app_user", userId: rows[0].id };
  await pool.query("select app_private.generate_demo($1, 200)", [alice.userId]);
  exportDir = await mkdtemp(path.join(tmpdir(), "prompter-replica-exports-"));
}, 120_000);

afterAll(async () => {
  await pool?.end();
  await pair?.stop();
  if (exportDir) await rm(exportDir, { recursive: true, force: true });
});

/** Whether the server's log shows the export's COPY (its connection is named after the export). */
async function ranCopy(server: typeof pair.primary, exportId: string): Promise<boolean> {
  return (await server.log()).split("\n").some((line) => line.startsWith(`prompter-worker export=${exportId} `) && line.includes("COPY ("));
}

/** A prompt committed on the primary, then an export requested: the export must hold the prompt. */
async function writeThenExport(text: string): Promise<string> {
  await pool.query("insert into app_public.prompts (user_id, text) values ($1, $2)", [alice.userId, text]);
  return requestExport(pool, alice, "multi_agent_log");
}

/** Until the export's COPY on the standby waits for a lock. */
async function waitForWaitingCopy(exportId: string): Promise<void> {
  const watcher = new pg.Client({ connectionString: pair.standby.url("prompter") });
  await watcher.connect();
  try {
    await waitUntil(
      async () => (await watcher.query("select from pg_stat_activity where application_name like $1 and wait_event_type = 'Lock'",
        [`prompter-worker export=${exportId} %`])).rowCount,
      (count) => count === 1,
      `export ${exportId}'s COPY waits on the standby`,
    );
  } finally {
    await watcher.end();
  }
}

async function exportedTexts(id: string): Promise<string[]> {
  const row = await waitForExport(pool, id);
  expect(row.status, row.error_message ?? "").toBe("succeeded");
  const [rows] = [...(await exportContents(exportDir, row)).values()];
  const textColumn = rows[0].indexOf("original_prompt");
  return rows.slice(1).map((row) => row[textColumn]);
}

async function fallbacks(worker: Awaited<ReturnType<typeof startTestWorker>>, reason: string): Promise<number> {
  const metric = await worker.metrics.replicaFallbacks.get();
  return metric.values.filter((value) => value.labels.reason === reason).reduce((sum, value) => sum + value.value, 0);
}

describe("exports on a read replica", () => {
  it("run on the standby, and hold a row committed just before they were asked for", async () => {
    await caughtUp(ownerUrl, standbyOwnerUrl);
    const worker = await startTestWorker(ownerUrl, exportDir, { REPLICA_DATABASE_URL: standbyOwnerUrl, REPLICA_MAX_WAIT: "10" });
    try {
      const id = await writeThenExport("written just before the request");
      expect(await exportedTexts(id)).toContain("written just before the request");
      expect(await ranCopy(pair.standby, id)).toBe(true);
      expect(await ranCopy(pair.primary, id)).toBe(false);
      expect(await fallbacks(worker, "lagging") + await fallbacks(worker, "unavailable") + await fallbacks(worker, "failed")).toBe(0);
      const lag = await worker.metrics.registry.getSingleMetricAsString("prompter_replica_lag_seconds");
      expect(lag).toMatch(new RegExp(`prompter_replica_lag_seconds\\{replica="127.0.0.1:${pair.standby.port}/prompter"\\} \\d`));
    } finally {
      await worker.stop();
    }
  });

  it("move to the primary when the standby has not replayed the request within REPLICA_MAX_WAIT", async () => {
    const standby = new pg.Client({ connectionString: pair.standby.url("postgres") });
    await standby.connect();
    await standby.query("select pg_wal_replay_pause()");
    const worker = await startTestWorker(ownerUrl, exportDir, { REPLICA_DATABASE_URL: standbyOwnerUrl, REPLICA_MAX_WAIT: "1" });
    try {
      const id = await writeThenExport("written while the standby's replay is paused");
      expect(await exportedTexts(id)).toContain("written while the standby's replay is paused");
      expect(await ranCopy(pair.primary, id)).toBe(true);
      expect(await ranCopy(pair.standby, id)).toBe(false);
      expect(await fallbacks(worker, "lagging")).toBe(1);
      expect(worker.lines).toContainEqual(expect.objectContaining({
        level: "warn", message: "replica not used; the work moves on", fields: expect.objectContaining({ reason: "lagging" }) }));
    } finally {
      await worker.stop();
      await standby.query("select pg_wal_replay_resume()");
      await standby.end();
    }
  });

  it("move to the primary when the standby stops during the COPY, and the export succeeds", async () => {
    await caughtUp(ownerUrl, standbyOwnerUrl);
    // A lock the primary holds is replayed on the standby, where it holds the
    // export's COPY until the standby is stopped: a deterministic "mid-export".
    const locker = await pool.connect();
    await locker.query("begin");
    await locker.query("lock table app_public.prompts in access exclusive mode");
    const worker = await startTestWorker(ownerUrl, exportDir, { REPLICA_DATABASE_URL: standbyOwnerUrl, REPLICA_MAX_WAIT: "10" });
    try {
      const id = await requestExport(pool, alice, "multi_agent_log");
      await waitForWaitingCopy(id);
      await pair.standby.stop("immediate");
      await locker.query("commit");
      const texts = await exportedTexts(id);
      expect(texts.length).toBeGreaterThanOrEqual(200);
      expect(await ranCopy(pair.primary, id)).toBe(true);
      expect(await fallbacks(worker, "failed")).toBe(1);
      const row = await waitForExport(pool, id);
      expect(row.attempts).toBe(1);
    } finally {
      locker.release();
      await worker.stop();
      await pair.standby.start();
    }
  });

  it("move to the primary when the standby cancels the COPY for a recovery conflict, and the export succeeds", async () => {
    await caughtUp(ownerUrl, standbyOwnerUrl);
    // The "all" export's COPYs share one transaction, whose locks last until it
    // ends: held at its last COPY by a replayed lock, it still holds the tables
    // of the first ones, which a second replayed lock then needs. With
    // max_standby_streaming_delay = 0 the standby cancels the export at once.
    const holder = await pool.connect();
    await holder.query("begin");
    await holder.query("lock table app_hidden.agent_stats in access exclusive mode");
    const worker = await startTestWorker(ownerUrl, exportDir, { REPLICA_DATABASE_URL: standbyOwnerUrl, REPLICA_MAX_WAIT: "10" });
    try {
      const id = await requestExport(pool, alice, "all");
      await waitForWaitingCopy(id);
      await pool.query("begin; lock table app_public.prompts in access exclusive mode; commit");
      await waitUntil(async () => fallbacks(worker, "failed"), (count) => count === 1, "the export left the standby");
      await holder.query("commit");
      const row = await waitForExport(pool, id);
      expect(row.status, row.error_message ?? "").toBe("succeeded");
      expect(row.attempts).toBe(1);
      expect(worker.lines).toContainEqual(expect.objectContaining({
        message: "replica not used; the work moves on",
        fields: expect.objectContaining({ reason: "failed", error: expect.stringContaining("conflict with recovery") }) }));
    } finally {
      await holder.query("rollback").catch(() => {});
      holder.release();
      await worker.stop();
    }
  });

  it("without replicas, nothing changes: the primary runs the export", async () => {
    const worker = await startTestWorker(ownerUrl, exportDir);
    try {
      const id = await writeThenExport("no replica configured");
      expect(await exportedTexts(id)).toContain("no replica configured");
      expect(await ranCopy(pair.primary, id)).toBe(true);
    } finally {
      await worker.stop();
    }
  });
});

/** A run of one scored version by alice, committed on the primary. */
async function recordRunOfAlice(agent: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [alice.userId]);
    await client.query("select app_public.record_run($1)", [JSON.stringify({
      prompt: "a prompt for the dashboard",
      versions: [{ agent, text: "better", scores: { clarity: 9, specificity: 9, actionability: 9, structure: 9, context_use: 9 } }],
      best_version: 0,
    })]);
    await client.query("commit");
  } finally {
    client.release();
  }
}

const reads = async (server: typeof pair.primary) => (await server.log()).split("\n")
  .filter((line) => line.startsWith("prompter-gateway ") && line.includes("from app_public.agent_effectiveness")).length;

describe("the dashboard's reads on a read replica", () => {
  it("run on the standby, hold the caller's last write, and move to the primary while the standby lags", async () => {
    const server = await startServer({
      databaseUrl: ownerUrl,
      env: {
        AUTH_DATABASE_URL: pair.primary.url("prompter", AUTHENTICATOR, PASSWORD),
        REPLICA_AUTH_DATABASE_URL: pair.standby.url("prompter", AUTHENTICATOR, PASSWORD),
        REPLICA_MAX_WAIT: "1",
      },
    });
    const token = signTestToken(alice.userId);
    const domainTotal = async () => {
      const response = await fetch(`${server.baseUrl}/api/agents/effectiveness`, { headers: { authorization: `Bearer ${token}` } });
      expect(response.status).toBe(200);
      return ((await response.json()) as { effectiveness: Record<string, { total: number }> }).effectiveness.domain?.total ?? 0;
    };
    const standby = new pg.Client({ connectionString: pair.standby.url("postgres") });
    await standby.connect();
    try {
      const before = await domainTotal();
      await recordRunOfAlice("domain");
      const [onStandby, onPrimary] = [await reads(pair.standby), await reads(pair.primary)];
      expect(await domainTotal()).toBe(before + 1);
      expect(await reads(pair.standby)).toBe(onStandby + 1);
      expect(await reads(pair.primary)).toBe(onPrimary);

      await standby.query("select pg_wal_replay_pause()");
      await recordRunOfAlice("domain");
      expect(await domainTotal()).toBe(before + 2);
      expect(await reads(pair.primary)).toBe(onPrimary + 1);
      const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
      expect(metrics).toMatch(/prompter_replica_fallbacks_total\{replica="[^"]+",reason="lagging"\} 1/);
    } finally {
      await standby.query("select pg_wal_replay_resume()");
      await standby.end();
      await server.stop();
    }
  });
});

describe("SQL logins on a read replica", () => {
  it("are held to their limits there too: a statement past the login's timeout is cancelled by the worker", async () => {
    const { rows: [{ generated_password: password }] } = await pool.query<{ generated_password: string }>(
      "select generated_password from app_private.add_sql_login('analyst', 'alice', statement_timeout => '1s')");
    await caughtUp(ownerUrl, standbyOwnerUrl);
    const analyst = new pg.Client({ connectionString: pair.standby.url("prompter", "analyst", password) });
    await analyst.connect();
    const worker = await startTestWorker(ownerUrl, exportDir, { REPLICA_DATABASE_URL: standbyOwnerUrl, SQL_LOGIN_CHECK_INTERVAL: "1" });
    try {
      // What a login sets for itself does not lift its limit.
      await analyst.query("set statement_timeout = 0");
      const started = performance.now();
      const error = await analyst.query("select pg_sleep(30)").then(() => undefined, (failure: { code?: string }) => failure);
      expect(error).toMatchObject({ code: "57014" });
      expect(performance.now() - started).toBeLessThan(15_000);
      // The worker logs once its check, which cancelled the statement, has returned.
      const cancelledOnTheReplica = (line: (typeof worker.lines)[number]) => line.message === "SQL login statement cancelled: past its statement timeout"
        && line.fields.login === "analyst" && line.fields.replica === `127.0.0.1:${pair.standby.port}/prompter`;
      await waitUntil(async () => worker.lines.some(cancelledOnTheReplica), Boolean, "the worker reported the cancellation");
    } finally {
      await analyst.end();
      await worker.stop();
    }
  });
});
