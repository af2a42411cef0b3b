// Tombstone retention: a tombstone stays until every feed's last written run
// has seen it (its next run would hold the deletion), and then goes, so the
// table does not grow with every row ever deleted. Feeds that have not written
// a run need none (their first run reads the tables whole).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { JobHelpers } from "graphile-worker";
import { afterAll, beforeAll, expect, it } from "vitest";
import tombstoneRetentionTask from "../../src/tasks/tombstone_retention.ts";
import { createUser, useTestDatabase } from "../support/db.ts";
import { asOwner, createFeed, manifestOf, type Owner, runFeed, taskContext } from "./support.ts";

const db = useTestDatabase();
let dir: string;
let owner: Owner;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "prompter-tombstones-"));
  owner = { role: "app_user", userId: await createUser(db.pool) };
  await db.pool.query("select app_private.generate_demo($1, 6)", [owner.userId]);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Deletes one of the owner's versions that is no best head; answers its id. */
async function deleteVersion(): Promise<string> {
  return asOwner(db.pool, owner, async (client) => {
    const { rows: [version] } = await client.query<{ id: string }>(
      `delete from app_public.prompt_versions where id = (
         select v.id from app_public.prompt_versions v
          where not exists (select from app_public.best_heads h where h.prompt_version_id = v.id)
          order by v.id limit 1)
       returning id`);
    return version.id;
  });
}

async function hasTombstone(versionId: string): Promise<boolean> {
  const { rowCount } = await db.pool.query("select from app_hidden.tombstones where kind = 'prompt_versions' and row_id = $1", [versionId]);
  return rowCount === 1;
}

/** The hourly job, as the worker runs it. */
async function retention(): Promise<void> {
  const helpers = { job: { id: "test-tombstone-retention", attempts: 1, max_attempts: 1 } } as unknown as JobHelpers;
  await tombstoneRetentionTask({}, helpers, taskContext(db.pool, dir));
}

async function deletedIn(feedId: number, run: number): Promise<boolean> {
  const manifest = await manifestOf(dir, feedId, run);
  return manifest.files.some((file) => file.name.startsWith("deleted.") && file.rows > 0);
}

it("keeps a tombstone until every feed's last run has seen it, then deletes it", async () => {
  const versions = await createFeed(db.pool, owner, { kind: "prompt_versions", format: "csv" });
  const scores = await createFeed(db.pool, owner, { kind: "judge_scores", format: "csv" });

  // No feed has written a run: their first runs read the tables whole.
  const beforeAnyRun = await deleteVersion();
  await retention();
  expect(await hasTombstone(beforeAnyRun)).toBe(false);

  expect(await runFeed(db.pool, owner, versions, dir)).toBe(1);
  expect(await runFeed(db.pool, owner, scores, dir)).toBe(1);
  const afterRunOne = await deleteVersion();
  await retention();
  expect(await hasTombstone(afterRunOne)).toBe(true);

  // One feed has delivered the deletion; the other still needs it.
  expect(await runFeed(db.pool, owner, versions, dir)).toBe(2);
  expect(await deletedIn(versions, 2)).toBe(true);
  await retention();
  expect(await hasTombstone(afterRunOne)).toBe(true);

  expect(await runFeed(db.pool, owner, scores, dir)).toBe(2);
  await retention();
  expect(await hasTombstone(afterRunOne)).toBe(false);

  // A deleted feed holds nothing back.
  const afterRunTwo = await deleteVersion();
  await asOwner(db.pool, owner, (client) => client.query("delete from app_public.feeds where id = $1", [scores]));
  expect(await runFeed(db.pool, owner, versions, dir)).toBe(3);
  await retention();
  expect(await hasTombstone(afterRunTwo)).toBe(false);
  await asOwner(db.pool, owner, (client) => client.query("delete from app_public.feeds where id = $1", [versions]));
});

it("keeps what a paused feed will need when resumed", async () => {
  const paused = await createFeed(db.pool, owner, { kind: "prompt_versions", format: "csv" });
  expect(await runFeed(db.pool, owner, paused, dir)).toBe(1);
  await asOwner(db.pool, owner, (client) => client.query("select app_public.set_feed_paused($1, true)", [paused]));
  const whilePaused = await deleteVersion();
  await retention();
  expect(await hasTombstone(whilePaused)).toBe(true);

  await asOwner(db.pool, owner, (client) => client.query("select app_public.set_feed_paused($1, false)", [paused]));
  expect(await runFeed(db.pool, owner, paused, dir)).toBe(2);
  expect(await deletedIn(paused, 2)).toBe(true);
});
