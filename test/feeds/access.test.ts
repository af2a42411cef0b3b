// Who may do what with feeds (RLS, roles, checks with their codes), what the
// files hold (the multi_agent_log feed is the export, byte for byte; Parquet
// columns are typed), and an admin's global feed.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { to as copyTo } from "pg-copy-streams";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { actAs, createUser, errorOf, useTestDatabase } from "../support/db.ts";
import { asOwner, createFeed, manifestOf, type Owner, parquetTypes, runFeed, warehouse } from "./support.ts";

const db = useTestDatabase();
let dir: string;
let alice: Owner;
let bob: Owner;
let admin: Owner;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "prompter-feeds-"));
  alice = { role: "app_user", userId: await createUser(db.pool) };
  bob = { role: "app_user", userId: await createUser(db.pool) };
  admin = { role: "app_admin", userId: await createUser(db.pool, { admin: true }) };
  await db.pool.query("select app_private.generate_demo($1, 25)", [alice.userId]);
  await db.pool.query("select app_private.generate_demo($1, 7)", [bob.userId]);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("checks", () => {
  it.each([
    [{ kind: "nope", format: "csv" }, "PFKND"],
    [{ kind: "prompts", format: "xlsx" }, "PFFMT"],
    [{ kind: "prompts", format: "parquet", options: { gzip: true } }, "PROPT"],
    [{ kind: "prompts", format: "jsonl", options: { excel: true } }, "PROPT"],
    [{ kind: "prompts", format: "csv", filters: { agents: ["syntax"] } }, "PFFLT"],
    [{ kind: "prompt_versions", format: "csv", filters: { agents: ["nobody"] } }, "PFFLT"],
    [{ kind: "prompt_versions", format: "csv", filters: { created_after: "yesterday" } }, "PFFLT"],
    [{ kind: "prompt_versions", format: "csv", filters: { created_after: "2025-02-01", created_before: "2025-01-01" } }, "PFFLT"],
    [{ kind: "prompts", format: "csv", every: "5 minutes" }, "23514"],
    [{ kind: "prompts", format: "csv", is_global: true }, "PFGLB"],
  ])("%j is refused with %s and changes nothing", async (feed, code) => {
    const error = await errorOf(createFeed(db.pool, alice, feed));
    expect(error.code).toBe(code);
    const { rows } = await db.pool.query("select from app_public.feeds where user_id = $1", [alice.userId]);
    expect(rows).toEqual([]);
  });

  it("anonymous may not create a feed", async () => {
    const error = await errorOf(
      actAs(db.pool, { role: "app_anonymous" }, (client) => client.query("insert into app_public.feeds (kind, format) values ('prompts', 'csv')")),
    );
    expect(error.code).toBe("42501");
  });
});

describe("RLS", () => {
  it("a user sees, runs and pauses only their own feeds and runs", async () => {
    const feedId = await createFeed(db.pool, alice, { kind: "prompts", format: "csv", every: "1 hour" });
    await runFeed(db.pool, alice, feedId, dir);
    await actAs(db.pool, bob, async (client) => {
      expect((await client.query("select from app_public.feeds where id = $1", [feedId])).rows).toEqual([]);
      expect((await client.query("select from app_public.feed_runs where feed_id = $1", [feedId])).rows).toEqual([]);
      expect((await client.query("select from app_hidden.tombstones where user_id = $1", [alice.userId])).rows).toEqual([]);
      expect((await client.query("delete from app_public.feeds where id = $1", [feedId])).rowCount).toBe(0);
    });
    for (const call of ["select app_public.request_feed_run($1)", "select app_public.set_feed_paused($1, true)"]) {
      const error = await errorOf(actAs(db.pool, bob, (client) => client.query(call, [feedId])));
      expect(error.code).toBe("PRNFD");
    }
    await actAs(db.pool, admin, async (client) => {
      expect((await client.query("select from app_public.feeds where id = $1", [feedId])).rows).toHaveLength(1);
    });
  });

  it("a user's feed holds their rows only; an admin's global feed holds everyone's", async () => {
    const own = await createFeed(db.pool, alice, { kind: "prompt_versions", format: "jsonl" });
    const global = await createFeed(db.pool, admin, { kind: "prompt_versions", format: "jsonl", is_global: true });
    const adminsOwn = await createFeed(db.pool, admin, { kind: "prompt_versions", format: "jsonl" });
    for (const [feed, owner] of [[own, alice], [global, admin], [adminsOwn, admin]] as const) await runFeed(db.pool, owner, feed, dir);
    const ids = async (feed: number) => (await warehouse(dir, feed, 1, "id")).map((row) => String(row.id)).sort();
    const { rows: alices } = await db.pool.query<{ id: string }>("select id::text from app_public.prompt_versions where user_id = $1 order by 1", [alice.userId]);
    const { rows: all } = await db.pool.query<{ id: string }>("select id::text from app_public.prompt_versions order by 1");
    expect(await ids(own)).toEqual(alices.map((row) => row.id));
    expect(await ids(global)).toEqual(all.map((row) => row.id));
    expect(await ids(adminsOwn)).toEqual([]);

    // A global feed of an owner who is no longer an admin stops, with its reason.
    await db.pool.query("update app_public.users set is_admin = false where id = $1", [admin.userId]);
    try {
      await expect(runFeed(db.pool, admin, global, dir)).rejects.toThrow(/is failed: Feed \d+ holds everyone's rows, and its owner is no longer an admin/);
    } finally {
      await db.pool.query("update app_public.users set is_admin = true where id = $1", [admin.userId]);
    }
  });
});

describe("content", () => {
  it("a multi_agent_log CSV feed's first run is the multi_agent_log export, byte for byte", async () => {
    const feedId = await createFeed(db.pool, alice, { kind: "multi_agent_log", format: "csv", options: { excel: true } });
    await runFeed(db.pool, alice, feedId, dir);
    const feedFile = await readFile(path.join(dir, "feeds", String(feedId), "1", "multi_agent_log.csv"), "utf8");
    const exported = await actAs(db.pool, alice, async (client) => {
      const { rows } = await client.query<{ query: string }>("select query from app_hidden.export_parts('multi_agent_log', true)");
      const copy = client.query(copyTo(`COPY (${rows[0].query}) TO STDOUT WITH (FORMAT csv, HEADER)`));
      const chunks: Buffer[] = [];
      for await (const chunk of copy) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString("utf8");
    });
    expect(feedFile.split("\n").length).toBe(26 + 1);
    expect(feedFile).toBe(exported);
  });

  it("Parquet columns are typed: integers, timestamps with time zone, numerics", async () => {
    const scores = await createFeed(db.pool, alice, { kind: "judge_scores", format: "parquet" });
    const log = await createFeed(db.pool, alice, { kind: "multi_agent_log", format: "parquet" });
    await runFeed(db.pool, alice, scores, dir);
    await runFeed(db.pool, alice, log, dir);
    const folder = (feed: number) => path.join(dir, "feeds", String(feed), "1");
    expect(await parquetTypes(path.join(folder(scores), "judge_scores.parquet"))).toEqual({
      id: "BIGINT",
      prompt_version_id: "BIGINT",
      user_id: "BIGINT",
      source: "VARCHAR",
      clarity: "DOUBLE",
      specificity: "DOUBLE",
      actionability: "DOUBLE",
      structure: "DOUBLE",
      context_use: "DOUBLE",
      total: "DOUBLE",
      created_at: "TIMESTAMP WITH TIME ZONE",
    });
    expect(await parquetTypes(path.join(folder(log), "multi_agent_log.parquet"))).toMatchObject({
      request_id: "BIGINT",
      timestamp: "TIMESTAMP WITH TIME ZONE",
      syntax_score: "DOUBLE",
    });
    expect(await parquetTypes(path.join(folder(log), "deleted.parquet"))).toEqual({ request_id: "BIGINT" });
    // Timestamps keep their microseconds.
    const [first] = await warehouse(dir, scores, 1, "id");
    const { rows } = await db.pool.query<{ t: string }>(
      "select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') as t from app_public.judge_scores where id = $1",
      [first.id],
    );
    expect(String(first.created_at)).toContain(rows[0].t.replace(/0+$/, ""));
    const manifest = await manifestOf(dir, scores, 1);
    expect(manifest).toMatchObject({ run: 1, kind: "judge_scores", format: "parquet", schema_version: 1, snapshot: { since: null } });
  });

  it("a run of agent_effectiveness is the whole leaderboard", async () => {
    const feedId = await createFeed(db.pool, alice, { kind: "agent_effectiveness", format: "csv" });
    await runFeed(db.pool, alice, feedId, dir);
    await runFeed(db.pool, alice, feedId, dir);
    const manifest = await manifestOf(dir, feedId, 2);
    expect(manifest.files.map((file) => [file.name, file.rows])).toEqual([["agent_effectiveness.csv", 3]]);
  });

  it("filters: created range and agents; a row the filter no longer takes is deleted", async () => {
    const feedId = await createFeed(db.pool, alice, { kind: "prompt_versions", format: "jsonl", filters: { agents: ["syntax"] } });
    await runFeed(db.pool, alice, feedId, dir);
    const { rows: syntax } = await db.pool.query<{ id: string }>(
      "select id::text from app_public.prompt_versions where user_id = $1 and source = 'syntax' order by 1",
      [alice.userId],
    );
    const ids = async (runs: number) => (await warehouse(dir, feedId, runs, "id")).map((row) => String(row.id)).sort();
    expect(await ids(1)).toEqual(syntax.map((row) => row.id).sort());
    await asOwner(db.pool, alice, (client) => client.query("update app_public.prompt_versions set source = 'domain' where id = $1", [syntax[0].id]));
    await runFeed(db.pool, alice, feedId, dir);
    expect(await ids(2)).toEqual(syntax.slice(1).map((row) => row.id).sort());

    const future = await createFeed(db.pool, alice, { kind: "prompts", format: "csv", filters: { created_after: "2999-01-01T00:00:00Z" } });
    await runFeed(db.pool, alice, future, dir);
    expect((await manifestOf(dir, future, 1)).files[0].rows).toBe(0);
  });
});
