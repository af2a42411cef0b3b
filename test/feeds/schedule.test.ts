// The schedule: a due feed gets one run, however many of its slots were
// missed, and its next time is the first slot after now; a paused feed gets
// none; a run that failed for good is queued again under its number.
import { beforeAll, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { createFeed, type Owner, readRun } from "./support.ts";

const db = useTestDatabase();
let owner: Owner;

beforeAll(async () => {
  owner = { role: "app_user", userId: await createUser(db.pool) };
});

async function runsOf(feedId: number): Promise<number[]> {
  const { rows } = await db.pool.query<{ number: number }>("select number from app_public.feed_runs where feed_id = $1 order by number", [feedId]);
  return rows.map((row) => row.number);
}

it("missed slots catch up in one run; the next time is the first slot after now; paused feeds wait", async () => {
  const hourly = await createFeed(db.pool, owner, { kind: "prompts", format: "csv", every: "1 hour" });
  const paused = await createFeed(db.pool, owner, { kind: "prompts", format: "csv", every: "20 minutes" });
  const onRequest = await createFeed(db.pool, owner, { kind: "prompts", format: "csv" });
  // Five and a half hours of missed slots.
  await db.pool.query("update app_public.feeds set next_run_at = now() - interval '5 hours 30 minutes' where id = any($1)", [[hourly, paused]]);
  await db.pool.query("update app_public.feeds set paused = true where id = $1", [paused]);

  await db.pool.query("select app_private.queue_due_feeds()");
  await db.pool.query("select app_private.queue_due_feeds()");
  expect(await runsOf(hourly)).toEqual([1]);
  expect(await runsOf(paused)).toEqual([]);
  expect(await runsOf(onRequest)).toEqual([]);
  const { rows: [feed] } = await db.pool.query<{ ahead: string }>(
    "select extract(epoch from next_run_at - now())::int as ahead from app_public.feeds where id = $1",
    [hourly],
  );
  expect(Number(feed.ahead)).toBeGreaterThan(0);
  expect(Number(feed.ahead)).toBeLessThanOrEqual(30 * 60);
  // One job for the run.
  const { rows: jobs } = await db.pool.query("select j.payload from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id where t.identifier = 'feed_run' and j.payload->>'feedId' = $1", [String(hourly)]);
  expect(jobs).toEqual([{ payload: { feedId: hourly, run: 1 } }]);

  // The run failed for good: the next due time queues it again, as run 1.
  await db.pool.query("update app_public.feed_runs set status = 'failed' where feed_id = $1", [hourly]);
  await db.pool.query("update app_public.feeds set next_run_at = now() - interval '1 minute' where id = $1", [hourly]);
  await db.pool.query("select app_private.queue_due_feeds()");
  expect(await runsOf(hourly)).toEqual([1]);
  expect(await readRun(db.pool, hourly, 1)).toMatchObject({ status: "queued", attempts: 0 });
});
