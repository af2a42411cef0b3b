// One-off exports in every format, with and without filters, read back as a
// consumer would (./read-back.ts: a CSV parser, DuckDB for JSONL and Parquet)
// and compared with the oracle's recomputation from the tables' rows
// (./oracle.ts), filtered here by the filters' own definition; never with the
// SQL the worker runs. Also: another user's rows never appear, Parquet's column
// types, file names, and the requests the rules refuse, which queue nothing.
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parquetTypes } from "../feeds/support.ts";
import { createUser, errorOf, useTestDatabase } from "../support/db.ts";
import { expectedExport, exportTime } from "./oracle.ts";
import { comparable, readBack } from "./read-back.ts";
import { exportFile, requestExport, type SignedIn, unzip, useExportWorker, waitForExport } from "./support.ts";

const db = useTestDatabase();
const exportWorker = useExportWorker(db);
let alice: SignedIn;
let bob: SignedIn;
/** Alice's bounds: the created_at of one of her versions, and of a later prompt, exactly (microseconds). */
const bounds = {} as { versionAt: string; promptAt: string };

const TRICKY = 'He said "hi, there",\nthen left; a back\\slash, a tab\t, CRLF\r\nand emoji 🎉👩‍💻 {"json": [1]}';

type Filters = { created_after?: string; created_before?: string; agents?: string[] };

beforeAll(async () => {
  alice = { role: "app_user", userId: await createUser(db.pool) };
  bob = { role: "app_user", userId: await createUser(db.pool) };
  await db.pool.query("select app_private.generate_demo($1, 30)", [alice.userId]);
  await db.pool.query("select app_private.generate_demo($1, 10)", [bob.userId]);
  // Text that JSON escapes and CSV quotes, in a prompt and its version.
  const { rows: [{ id: promptId }] } = await db.pool.query<{ id: string }>(
    "insert into app_public.prompts (user_id, text) values ($1, $2) returning id", [alice.userId, TRICKY]);
  await db.pool.query("insert into app_public.prompt_versions (prompt_id, user_id, source, text, explanation) values ($1, $2, 'domain', $3, $3)",
    [promptId, alice.userId, TRICKY]);
  // The demo writes everything at one instant: spread the rows over time, each
  // at its own microsecond, so a range cuts through them.
  for (const table of ["prompts", "prompt_versions", "judge_scores"]) {
    await db.pool.query(`update app_public.${table} set created_at = timestamptz '2025-01-01 00:00:00+00' + id * interval '1 hour 7 microseconds'`);
  }
  const { rows: [picked] } = await db.pool.query<{ version_us: string; prompt_us: string }>(
    `select (select (extract(epoch from created_at) * 1000000)::bigint::text from app_public.prompt_versions
              where user_id = $1 order by id offset 20 limit 1) as version_us,
            (select (extract(epoch from created_at) * 1000000)::bigint::text from app_public.prompts
              where user_id = $1 order by id offset 20 limit 1) as prompt_us`, [alice.userId]);
  bounds.versionAt = exportTime(picked.version_us);
  bounds.promptAt = exportTime(picked.prompt_us);
});

/** The oracle's rows of the kind for the actor, with the filters applied as README defines them. */
async function expected(actor: SignedIn, kind: string, filters: Filters = {}): Promise<Map<string, string[][]>> {
  const files = await expectedExport(db.pool, actor, kind);
  return new Map([...files].map(([name, [header, ...rows]]) => {
    const part = name.replace(/\.csv$/, "");
    const time = header.indexOf(part === "multi_agent_log" ? "timestamp" : "created_at");
    const agent = header.indexOf(part === "agent_effectiveness" ? "agent" : "source");
    // Exports' timestamps are ISO text in UTC with microseconds, which sorts as time does.
    const kept = rows.filter((row) =>
      (time < 0 || filters.created_after === undefined || row[time] >= filters.created_after) &&
      (time < 0 || filters.created_before === undefined || row[time] < filters.created_before) &&
      (part === "multi_agent_log" || agent < 0 || filters.agents === undefined || filters.agents.includes(row[agent])));
    return [part, comparable([header, ...kept])];
  }));
}

/** Exports and waits, clear of the per-minute rate limit (content.test.ts tests that) by ageing the user's earlier requests. */
async function runExport(actor: SignedIn, kind: string, format: string, options: object = {}, filters: Filters = {}) {
  await db.pool.query("update app_public.exports set requested_at = requested_at - interval '1 minute' where user_id = $1", [actor.userId]);
  const id = await requestExport(db.pool, actor, kind, options, format, filters);
  const row = await waitForExport(db.pool, id);
  expect(row.error_message).toBeNull();
  const data = await exportFile(exportWorker.dir, row);
  return { row, data, files: await readBack(row.file_name!, data) };
}

const FORMATS: [string, object, RegExp][] = [
  ["csv", {}, /\.csv$/],
  ["csv", { gzip: true }, /\.csv\.gz$/],
  ["jsonl", {}, /\.jsonl$/],
  ["jsonl", { gzip: true }, /\.jsonl\.gz$/],
  ["parquet", {}, /\.parquet$/],
];
const KINDS = ["multi_agent_log", "prompt_versions", "judge_scores", "agent_effectiveness"];

describe("formats", () => {
  it.each(FORMATS)("%s %j: every kind holds the requester's rows and nobody else's", async (format, options, extension) => {
    for (const kind of KINDS) {
      const { row, files } = await runExport(alice, kind, format, options);
      expect(row.file_name).toMatch(extension);
      expect(files).toEqual(await expected(alice, kind));
      const [header, ...rows] = files.get(kind)!;
      expect(Number(row.rows)).toBe(rows.length);
      // RLS: none of Bob's rows, by id or by user_id.
      const userColumn = header.indexOf("user_id");
      if (userColumn >= 0) expect(new Set(rows.map((r) => r[userColumn]))).toEqual(new Set([alice.userId]));
    }
    // Bob's export holds only his rows too: his prompts, fewer than Alice's.
    const bobs = await runExport(bob, "multi_agent_log", format, options);
    expect(bobs.files).toEqual(await expected(bob, "multi_agent_log"));
    expect(bobs.files.get("multi_agent_log")!.length).toBe(11);
    expect(JSON.stringify([...bobs.files.values()])).not.toContain("🎉");
  });

  it.each(["csv", "jsonl", "parquet"])("all in %s: a zip of every kind in that format", async (format) => {
    const { row, data, files } = await runExport(alice, "all", format);
    expect(row.file_name).toMatch(/\.zip$/);
    expect(files).toEqual(await expected(alice, "all"));
    const extension = format === "csv" ? "csv" : format;
    expect([...unzip(data).keys()]).toEqual(KINDS.map((kind) => `${kind}.${extension}`));
  });

  it("Parquet columns are typed: integers, timestamps with time zone, numerics", async () => {
    const { row } = await runExport(alice, "judge_scores", "parquet");
    const types = await parquetTypes(path.join(exportWorker.dir, row.file_name!));
    expect(types).toMatchObject({ id: "BIGINT", prompt_version_id: "BIGINT", user_id: "BIGINT", source: "VARCHAR", created_at: "TIMESTAMP WITH TIME ZONE" });
    for (const column of ["clarity", "specificity", "actionability", "structure", "context_use", "total"]) expect(types[column]).toBe("DOUBLE");
    const log = await runExport(alice, "multi_agent_log", "parquet");
    const logTypes = await parquetTypes(path.join(exportWorker.dir, log.row.file_name!));
    expect(logTypes).toMatchObject({ request_id: "BIGINT", timestamp: "TIMESTAMP WITH TIME ZONE", syntax_score: "DOUBLE" });
  });
});

describe("filters", () => {
  const cases: [string, string, () => Filters][] = [
    ["created_after on versions", "prompt_versions", () => ({ created_after: bounds.versionAt })],
    ["created_before on scores", "judge_scores", () => ({ created_before: bounds.versionAt })],
    ["a created range on the prompts of multi_agent_log", "multi_agent_log", () => ({ created_after: "2025-01-01T05:00:00.000000Z", created_before: bounds.promptAt })],
    ["agents on versions", "prompt_versions", () => ({ agents: ["syntax", "domain"] })],
    ["agents on scores, with a range", "judge_scores", () => ({ agents: ["structure"], created_after: "2025-01-01T10:00:00.000000Z" })],
    ["agents on agent_effectiveness", "agent_effectiveness", () => ({ agents: ["domain"] })],
  ];
  it.each(cases)("%s: the rows that match, in every format", async (_case, kind, filtersOf) => {
    const filters = filtersOf();
    const want = await expected(alice, kind, filters);
    const all = (await expected(alice, kind)).get(kind)!;
    // The filter keeps some rows and drops some, so it is seen to work.
    expect(want.get(kind)!.length).toBeGreaterThan(1);
    expect(want.get(kind)!.length).toBeLessThan(all.length);
    for (const [format, options] of FORMATS) {
      const { row, files } = await runExport(alice, kind, format, options, filters);
      expect(files, `${format} ${JSON.stringify(options)}`).toEqual(want);
      expect(Number(row.rows)).toBe(want.get(kind)!.length - 1);
    }
  });

  it("all: each file takes the filters its kind takes", async () => {
    const filters = { created_after: bounds.versionAt, agents: ["syntax"] };
    const { files } = await runExport(alice, "all", "parquet", {}, filters);
    expect(files).toEqual(await expected(alice, "all", filters));
  });

  it("a bound equal to a row's created_at: created_after takes it, created_before does not", async () => {
    const at = { created_after: bounds.versionAt };
    const { files } = await runExport(alice, "prompt_versions", "jsonl", {}, at);
    const [header, first] = files.get("prompt_versions")!;
    expect(first[header.indexOf("created_at")]).toBe(bounds.versionAt);
    const before = await runExport(alice, "prompt_versions", "jsonl", {}, { created_before: bounds.versionAt });
    const rows = before.files.get("prompt_versions")!;
    expect(rows[rows.length - 1][header.indexOf("created_at")] < bounds.versionAt).toBe(true);
  });
});

describe("requests the rules refuse", () => {
  it.each([
    ["an unknown format", "prompt_versions", "xlsx", {}, {}, "PFFMT"],
    ["excel on JSONL", "prompt_versions", "jsonl", { excel: true }, {}, "PROPT"],
    ["gzip on Parquet", "prompt_versions", "parquet", { gzip: true }, {}, "PROPT"],
    ["gzip on the zip of all, in JSONL", "all", "jsonl", { gzip: true }, {}, "PROPT"],
    ["created_after after created_before", "prompt_versions", "csv", {}, { created_after: "2025-02-01T00:00:00Z", created_before: "2025-01-01T00:00:00Z" }, "PFFLT"],
    ["created_after equal to created_before", "judge_scores", "csv", {}, { created_after: "2025-01-01T00:00:00Z", created_before: "2025-01-01T00:00:00Z" }, "PFFLT"],
    ["a timestamp that is none", "prompt_versions", "parquet", {}, { created_after: "last tuesday" }, "PFFLT"],
    ["an unknown agent", "judge_scores", "csv", {}, { agents: ["nobody"] }, "PFFLT"],
    ["agents that are no list of names", "judge_scores", "csv", {}, { agents: "syntax" }, "PFFLT"],
    ["an empty list of agents", "judge_scores", "csv", {}, { agents: [] }, "PFFLT"],
    ["agents on multi_agent_log", "multi_agent_log", "jsonl", {}, { agents: ["syntax"] }, "PFFLT"],
    ["a created range on agent_effectiveness", "agent_effectiveness", "csv", {}, { created_after: "2025-01-01T00:00:00Z" }, "PFFLT"],
    ["an unknown filter", "prompt_versions", "csv", {}, { user: "bob" }, "PFFLT"],
    ["filters that are no object", "prompt_versions", "csv", {}, ["syntax"], "PFFLT"],
  ])("%s fails with its code and queues nothing", async (_case, kind, format, options, filters, code) => {
    const user: SignedIn = { role: "app_user", userId: await createUser(db.pool) };
    const counts = "select (select count(*) from app_public.exports) as exports, (select count(*) from graphile_worker.jobs where task_identifier = 'export') as jobs";
    const before = (await db.pool.query(counts)).rows[0];
    const error = await errorOf(requestExport(db.pool, user, kind, options, format, filters as Filters));
    expect(error.code).toBe(code);
    expect(error.message).not.toMatch(/feed/);
    expect((await db.pool.query(counts)).rows[0]).toEqual(before);
  });
});
