// The gateway's transactions as the caller (auth.ts, callerTransactions) on
// one connection of the authenticator, as the gateway's pool has them.
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Request } from "express";
import pg from "pg";
import { loadConfig } from "../../src/config.ts";
import { callerTransactions } from "../../src/server/auth.ts";
import { setCaller } from "../../src/server/caller.ts";
import { createUser, useTestDatabase } from "../support/db.ts";

const db = useTestDatabase();
let pool: pg.Pool;
let asCaller: ReturnType<typeof callerTransactions>;
let req: Request;

beforeAll(async () => {
  const userId = await createUser(db.pool);
  pool = new pg.Pool({ connectionString: db.authUrl, max: 1, pipeline: true } as pg.PoolConfig);
  asCaller = callerTransactions(pool, loadConfig({}));
  req = { ip: "127.0.0.1", headers: {}, res: { locals: { requestId: "caller-transactions-test" } } } as unknown as Request;
  setCaller(req, { userId, session: { generation: 0, issuedAt: null, expiresAt: Math.floor(Date.now() / 1000) + 3600 } });
});
afterAll(() => pool?.end());

const preparedLike = (pattern: string) =>
  asCaller(req, async (client) => (await client.query<{ statement: string; runs: number }>(
    "select statement, generic_plans + custom_plans as runs from pg_prepared_statements where statement like $1 order by statement",
    [pattern])).rows);

it("prepares a query it sends with parameters, so PostgreSQL parses it once per connection", async () => {
  for (let i = 0; i < 3; i++) {
    await asCaller(req, (client) => client.query("select $1::int as repeated", [i]));
  }
  expect(await preparedLike("select $1::int as repeated")).toEqual([{ statement: "select $1::int as repeated", runs: "3" }]);
});

it("prepares at most 100 texts per connection, and runs the others unnamed", async () => {
  for (let i = 0; i < 150; i++) {
    const { rows } = await asCaller(req, (client) => client.query(`select $1::int + ${i} as distinct_text`, [1]));
    expect(rows).toEqual([{ distinct_text: 1 + i }]);
  }
  // The start statement, the first test's text and the lookup's own count among the 100.
  expect((await preparedLike("select $1::int + % as distinct_text")).length).toBe(97);
  expect(await preparedLike("%gateway_session_role%")).toHaveLength(1);
});

it("prepares nothing with DATAPLAN_PG_PREPARED_STATEMENT_CACHE_SIZE=0, as a PgBouncer before 1.21 needs", async () => {
  const unprepared = new pg.Pool({ connectionString: db.authUrl, max: 1, pipeline: true } as pg.PoolConfig);
  try {
    const asCallerUnprepared = callerTransactions(unprepared, loadConfig({ DATAPLAN_PG_PREPARED_STATEMENT_CACHE_SIZE: "0" }));
    for (let i = 0; i < 3; i++) await asCallerUnprepared(req, (client) => client.query("select $1::int as repeated", [i]));
    const { rows } = await asCallerUnprepared(req, (client) => client.query("select count(*)::int as prepared from pg_prepared_statements"));
    expect(rows).toEqual([{ prepared: 0 }]);
  } finally {
    await unprepared.end();
  }
});

it("commits with the work's first batch: what fails in it leaves nothing, and a query sent after it is refused", async () => {
  const text = `caller-transactions batch ${Date.now()}`;
  const stored = async () => (await db.pool.query("select count(*)::int as n from app_public.prompts where text = $1", [text])).rows[0].n;
  // Sent together, before any answer: one transaction, rolled back as a whole.
  await expect(asCaller(req, (client) => Promise.all([
    client.query("insert into app_public.prompts (text) values ($1)", [text]),
    client.query("select 1 / 0"),
  ]))).rejects.toMatchObject({ code: "22012" });
  expect(await stored()).toBe(0);
  // A query after the first answer would run after commit, outside the caller's transaction.
  await expect(asCaller(req, async (client) => {
    await client.query("insert into app_public.prompts (text) values ($1)", [text]);
    await client.query("insert into app_public.prompts (text) values ($1)", [text]);
  })).rejects.toThrow("after its commit");
  expect(await stored()).toBe(1);
  const { rows } = await asCaller(req, (client) => client.query("select current_user as role, count(*)::int as n from app_public.prompts where text = $1", [text]));
  expect(rows).toEqual([{ role: "app_user", n: 1 }]);
});
