// The per-user rate limit under concurrency: requests that run at the same
// time, each in its own transaction, must not all count the same committed
// rows and slip under the limit together.
import pg from "pg";
import { expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";

const db = useTestDatabase();
const KINDS = ["multi_agent_log", "prompt_versions", "judge_scores", "agent_effectiveness", "all"];

it("20 concurrent requests of one user across kinds and options: exactly 10 accepted, the others refused with PRRTL", async () => {
  const userId = await createUser(db.pool);
  const clients = Array.from({ length: 20 }, () => new pg.Client({ connectionString: db.url }));
  try {
    await Promise.all(clients.map((client) => client.connect()));
    await Promise.all(
      clients.map(async (client) => {
        await client.query("begin");
        await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [userId]);
      }),
    );
    // All 20 requests are sent at once. Each transaction stays open a moment
    // after its insert: unless the requests are serialised, every one of them
    // counts the same (zero) committed exports and is accepted.
    const outcomes = await Promise.all(
      clients.map(async (client, i) => {
        const kind = KINDS[i % KINDS.length];
        const options = { excel: i % 2 === 0, ...(kind === "all" ? {} : { gzip: i % 3 === 0 }) };
        try {
          await client.query("select app_public.request_export($1, $2)", [kind, options]);
          await client.query("select pg_sleep(0.2)");
          await client.query("commit");
          return "accepted";
        } catch (error) {
          await client.query("rollback");
          return (error as { code: string }).code;
        }
      }),
    );
    expect(outcomes.filter((outcome) => outcome === "accepted")).toHaveLength(10);
    expect(outcomes.filter((outcome) => outcome !== "accepted")).toEqual(Array(10).fill("PRRTL"));
    const { rows } = await db.pool.query(
      `select (select count(*)::int from app_public.exports where user_id = $1) as exports,
              (select count(*)::int from graphile_worker.jobs where task_identifier = 'export') as jobs`,
      [userId],
    );
    expect(rows).toEqual([{ exports: 10, jobs: 10 }]);
  } finally {
    await Promise.all(clients.map((client) => client.end().catch(() => {})));
  }
});
