// What exports contain: every kind parsed back with a real CSV parser and
// compared with the same SELECT run as the requester, multi_agent_log also with
// a TypeScript recomputation of its rules; RLS; excel and gzip; byte-identical
// re-exports and the stale flag; the requests the rules refuse.
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import { actAs, createUser, errorOf, useTestDatabase, type Actor } from "../support/db.ts";
import {
  exportFile,
  exportQuery,
  parseCsv,
  requestExport,
  selectAsText,
  type SignedIn,
  unzip,
  useExportWorker,
  waitForExport,
} from "./support.ts";

const db = useTestDatabase();
const exportWorker = useExportWorker(db);
// The rate limit allows 10 exports a minute per user; these tests stay below it per user.
let alice: SignedIn;
let bob: SignedIn;
let admin: SignedIn;
const ids = {} as Record<"tricky" | "long" | "bare" | "bob", string>;

const TRICKY = 'He said "hi, there",\nthen left; a ""doubled"" quote, CRLF\r\nand emoji 🎉👩‍💻 — done';
const LONG = `${'a "quoted", comma\nline '.repeat(20_000)}end`;
const FORMULAS = ["=1+2", "+SUM(A1)", "-2 things", "@mention", "\tTabbed", "\rCarriage"];

async function sql(text: string, values: unknown[] = []): Promise<string> {
  const { rows } = await db.pool.query<{ id: string }>(text, values);
  return rows[0]?.id;
}
const addPrompt = (user: SignedIn, text: string) =>
  sql("insert into app_public.prompts (user_id, text) values ($1, $2) returning id", [user.userId, text]);
const addVersion = (user: SignedIn, promptId: string, source: string, text: string) =>
  sql("insert into app_public.prompt_versions (prompt_id, user_id, source, text) values ($1, $2, $3, $4) returning id", [
    promptId,
    user.userId,
    source,
    text,
  ]);
/** Scores every criterion `value` but context_use `value + 0.5`. */
const score = (user: SignedIn, versionId: string, value: number) =>
  sql(
    "insert into app_public.judge_scores (prompt_version_id, user_id, clarity, specificity, actionability, structure, context_use) values ($1, $2, $3, $3, $3, $3, $3 + 0.5) returning id",
    [versionId, user.userId, value],
  );
const total = (value: number) => (5 * value + 0.5).toFixed(1);
const setHead = (user: SignedIn, promptId: string, versionId: string) =>
  sql("insert into app_public.best_heads (prompt_id, prompt_version_id, user_id) values ($1, $2, $3)", [
    promptId,
    versionId,
    user.userId,
  ]);

beforeAll(async () => {
  alice = { role: "app_user", userId: await createUser(db.pool) };
  bob = { role: "app_user", userId: await createUser(db.pool) };
  admin = { role: "app_admin", userId: await createUser(db.pool, { admin: true }) };
  // Registered after the seed's three: their columns follow, by name.
  await db.pool.query("insert into app_public.agents (name) values ('zeta'), ('alpha')");

  ids.tricky = await addPrompt(alice, TRICKY);
  await score(alice, await addVersion(alice, ids.tricky, "syntax", "older syntax version"), 1);
  // The newest syntax version has no score yet, so the syntax score is empty.
  await addVersion(alice, ids.tricky, "syntax", "newer syntax version");
  const head = await addVersion(alice, ids.tricky, "structure", TRICKY.toUpperCase());
  await score(alice, head, 2);
  // Same created_at (one statement): the higher id is the newer.
  const { rows: tied } = await db.pool.query<{ id: string }>(
    `insert into app_public.prompt_versions (prompt_id, user_id, source, text)
     values ($1, $2, 'structure', 'tie one'), ($1, $2, 'structure', 'tie two') returning id`,
    [ids.tricky, alice.userId],
  );
  await score(alice, tied[0].id, 3);
  await score(alice, tied[1].id, 4);
  await score(alice, await addVersion(alice, ids.tricky, "zeta", "zeta's take"), 7);
  await setHead(alice, ids.tricky, head);

  ids.long = await addPrompt(alice, LONG);
  const longVersion = await addVersion(alice, ids.long, "domain", `=HYPERLINK("http://evil.example", "${LONG.slice(0, 100)}")`);
  await score(alice, longVersion, 0);
  await setHead(alice, ids.long, longVersion);

  ids.bare = await addPrompt(alice, "a prompt nobody improved yet");
  for (const formula of FORMULAS) {
    const prompt = await addPrompt(alice, formula);
    await setHead(alice, prompt, await addVersion(alice, prompt, "alpha", `${formula} improved`));
  }

  ids.bob = await addPrompt(bob, "bob's secret prompt");
  await score(bob, await addVersion(bob, ids.bob, "syntax", "bob's secret version"), 9);
}, 60_000);

/** Exports and waits; returns the finished row and the file's bytes. */
async function runExport(actor: SignedIn, kind: string, options: object = {}) {
  const row = await waitForExport(db.pool, await requestExport(db.pool, actor, kind, options));
  return { row, file: await exportFile(exportWorker.dir, row) };
}

const excelSafe = (cell: string) => (/^[=+\-@\t\r]/.test(cell) ? `'${cell}` : cell);

/**
 * multi_agent_log recomputed in TypeScript from the rows the actor can read:
 * one row per prompt by id; the best head's text and agent; per agent (seed's
 * three, then the others by name) the judge total of its newest version.
 */
async function expectedMultiAgentLog(actor: Actor, excel = false): Promise<string[][]> {
  const read = (query: string) => selectAsText(db.pool, actor, query).then((rows) => rows.slice(1));
  const agents = (await read("select name from app_public.agents order by name")).map(([name]) => name);
  const scoreAgents = ["syntax", "structure", "domain", ...agents.filter((a) => !["syntax", "structure", "domain"].includes(a))];
  const prompts = await read(
    "select id, to_json(created_at at time zone 'UTC') #>> '{}', text from app_public.prompts order by id",
  );
  const versionRows = await read(
    "select v.id, v.prompt_id, v.source, v.text, (extract(epoch from v.created_at) * 1000000)::bigint, s.total from app_public.prompt_versions v left join app_public.judge_scores s on s.prompt_version_id = v.id",
  );
  const heads = new Map((await read("select prompt_id, prompt_version_id from app_public.best_heads")).map(([p, v]) => [p, v]));
  const byId = new Map(versionRows.map((v) => [v[0], v]));
  const newer = (a: string[], b: string[]) => BigInt(a[4]) > BigInt(b[4]) || (a[4] === b[4] && BigInt(a[0]) > BigInt(b[0]));
  const text = (cell: string) => (excel ? excelSafe(cell) : cell);
  const header = ["request_id", "timestamp", "original_prompt", "final_prompt", "selected_agent", ...scoreAgents.map((a) => `${a}_score`)];
  return [
    header,
    ...prompts.map(([id, created, promptText]) => {
      const [whole, fraction = ""] = created.split(".");
      const head = byId.get(heads.get(id) ?? "");
      const scores = scoreAgents.map((agent) => {
        const own = versionRows.filter((v) => v[1] === id && v[2] === agent);
        const newest = own.reduce<string[] | undefined>((best, v) => (!best || newer(v, best) ? v : best), undefined);
        return newest?.[5] ?? "";
      });
      return [id, `${whole}.${fraction.padEnd(6, "0")}Z`, text(promptText), text(head?.[3] ?? ""), text(head?.[2] ?? ""), ...scores];
    }),
  ];
}

describe("multi_agent_log", () => {
  it("holds the user's prompts as the seed's columns, with agents registered later after them", async () => {
    const { row, file } = await runExport(alice, "multi_agent_log");
    const csv = parseCsv(file);
    expect(csv).toEqual(await expectedMultiAgentLog(alice));
    expect(csv[0]).toEqual([
      "request_id", "timestamp", "original_prompt", "final_prompt", "selected_agent",
      "syntax_score", "structure_score", "domain_score", "alpha_score", "zeta_score",
    ]);
    expect(row).toMatchObject({ kind: "multi_agent_log", rows: String(csv.length - 1), attempts: 1, error_message: null });
    expect(row.file_name).toMatch(/\.csv$/);

    // The fixture exercises each rule the recomputation encodes.
    const tricky = csv.find((r) => r[0] === ids.tricky)!;
    expect(tricky[1]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(tricky.slice(2, 5)).toEqual([TRICKY, TRICKY.toUpperCase(), "structure"]);
    // syntax: its newest version is unscored; structure: the later of two tied versions.
    expect(tricky.slice(5)).toEqual(["", total(4), "", "", total(7)]);
    expect(csv.find((r) => r[0] === ids.long)![2]).toBe(LONG);
    expect(csv.find((r) => r[0] === ids.bare)!.slice(3)).toEqual(["", "", "", "", "", "", ""]);
  });

  it("is the same as its SELECT run as the user, and as an admin covers everyone", async () => {
    const query = await exportQuery(db.pool, "multi_agent_log.csv");
    const own = await runExport(alice, "multi_agent_log");
    expect(parseCsv(own.file)).toEqual(await selectAsText(db.pool, alice, query));
    expect(own.file.includes("bob's secret")).toBe(false);

    const everyone = parseCsv((await runExport(admin, "multi_agent_log")).file);
    expect(everyone).toEqual(await selectAsText(db.pool, admin, query));
    expect(everyone).toEqual(await expectedMultiAgentLog(admin));
    expect(everyone.slice(1).map((r) => r[0])).toEqual(expect.arrayContaining([ids.tricky, ids.bob]));

    const bobs = parseCsv((await runExport(bob, "multi_agent_log")).file);
    expect(bobs.slice(1).map((r) => r[0])).toEqual([ids.bob]);
  });
});

describe("the other kinds", () => {
  it.each([
    ["prompt_versions", ["id", "prompt_id", "user_id", "text", "explanation", "source", "created_at"]],
    ["judge_scores", ["id", "prompt_version_id", "user_id", "source", "clarity", "specificity", "actionability", "structure", "context_use", "total", "created_at"]],
    ["agent_effectiveness", ["agent", "wins", "total", "win_rate", "avg_score", "scored"]],
  ])("%s is its SELECT run as the user, with only the user's rows", async (kind, columns) => {
    const csv = parseCsv((await runExport(alice, kind)).file);
    expect(csv[0]).toEqual(columns);
    expect(csv).toEqual(await selectAsText(db.pool, alice, await exportQuery(db.pool, `${kind}.csv`)));
    if (columns.includes("user_id")) {
      expect(csv.length).toBeGreaterThan(1);
      expect(new Set(csv.slice(1).map((r) => r[columns.indexOf("user_id")]))).toEqual(new Set([alice.userId]));
    }
  });
});

describe("options", () => {
  it("excel starts with a UTF-8 BOM and neutralises cells a spreadsheet would run as formulas", async () => {
    const { row, file } = await runExport(alice, "multi_agent_log", { excel: true });
    expect(file.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    const csv = parseCsv(file.subarray(3));
    expect(csv).toEqual(await expectedMultiAgentLog(alice, true));
    expect(csv).toEqual(await selectAsText(db.pool, alice, await exportQuery(db.pool, "multi_agent_log.csv", { excel: true })));
    const originals = csv.map((r) => r[2]);
    for (const formula of FORMULAS) expect(originals).toContain(`'${formula}`);
    expect(originals).toContain(TRICKY);
    expect(row.sha256).toBe(createHash("sha256").update(file).digest("hex"));
  });

  it("excel applies to every file of the zip of all", async () => {
    const { row, file } = await runExport(alice, "all", { excel: true });
    expect(row.file_name).toMatch(/\.zip$/);
    for (const [name, data] of unzip(file)) {
      expect(data.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
      expect(parseCsv(data.subarray(3))).toEqual(await selectAsText(db.pool, alice, await exportQuery(db.pool, name, { excel: true })));
    }
  });

  it("gzip writes .csv.gz holding exactly the plain export", async () => {
    const plain = await runExport(bob, "prompt_versions");
    const zipped = await runExport(bob, "prompt_versions", { gzip: true });
    expect(zipped.row.file_name).toMatch(/\.csv\.gz$/);
    expect(gunzipSync(zipped.file)).toEqual(plain.file);
    expect(zipped.row).toMatchObject({
      rows: plain.row.rows,
      bytes: String(zipped.file.length),
      sha256: createHash("sha256").update(zipped.file).digest("hex"),
    });
  });
});

describe("freshness", () => {
  it("re-exporting unchanged data gives the same bytes; a write makes the owner's exports stale and shows up in the next", async () => {
    const first = await runExport(bob, "multi_agent_log");
    const second = await runExport(bob, "multi_agent_log");
    const othersData = await runExport(alice, "judge_scores");
    const everyones = await runExport(admin, "agent_effectiveness");
    expect(second.row.sha256).toBe(first.row.sha256);
    expect(second.file).toEqual(first.file);
    expect(first.row.file_name).not.toBe(second.row.file_name);
    expect(first.row.stale).toBe(false);

    const added = await addPrompt(bob, "written after the export");
    const after = await waitForExport(db.pool, first.row.id);
    expect(after.stale).toBe(true);
    expect((await waitForExport(db.pool, othersData.row.id)).stale).toBe(false);
    expect((await waitForExport(db.pool, everyones.row.id)).stale).toBe(true);
    const third = await runExport(bob, "multi_agent_log");
    expect(parseCsv(third.file).map((r) => r[0])).toContain(added);
    expect(third.row.stale).toBe(false);
  });
});

describe("requests the rules refuse", () => {
  it.each([
    ["an unknown kind", "everything", {}, "PRKND"],
    ["an unknown option", "multi_agent_log", { zip: true }, "PROPT"],
    ["a non-boolean option", "multi_agent_log", { gzip: "yes" }, "PROPT"],
    ["gzip on the zip of all", "all", { gzip: true }, "PROPT"],
  ])("%s fails with its code and queues nothing", async (_case, kind, options, code) => {
    const user: SignedIn = { role: "app_user", userId: await createUser(db.pool) };
    const counts = "select (select count(*) from app_public.exports) as exports, (select count(*) from graphile_worker.jobs where task_identifier = 'export') as jobs";
    const before = (await db.pool.query(counts)).rows[0];
    const error = await errorOf(requestExport(db.pool, user, kind, options));
    expect(error.code).toBe(code);
    expect((await db.pool.query(counts)).rows[0]).toEqual(before);
  });

  it("the parts of an unknown kind are refused with PRKND", async () => {
    const error = await errorOf(selectAsText(db.pool, alice, "select * from app_hidden.export_parts('everything')"));
    expect(error.code).toBe("PRKND");
  });

  it("the 11th request of a user within a minute fails with PRRTL", async () => {
    const user: SignedIn = { role: "app_user", userId: await createUser(db.pool) };
    await actAs(db.pool, user, async (client) => {
      for (let i = 0; i < 10; i++) await client.query("select app_public.request_export('agent_effectiveness')");
      const error = await errorOf(client.query("select app_public.request_export('agent_effectiveness')"));
      expect(error.code).toBe("PRRTL");
    });
  });

  it("PRRTL says in its DETAIL when the oldest request of the minute leaves the window", async () => {
    const user: SignedIn = { role: "app_user", userId: await createUser(db.pool) };
    await actAs(db.pool, user, async (client) => {
      for (let i = 0; i < 10; i++) await client.query("select app_public.request_export('agent_effectiveness')");
      // As the owner, inside the same transaction: age the requests, the oldest 48 s, the others 5 s.
      await client.query("reset role");
      await client.query(
        `update app_public.exports set requested_at = clock_timestamp() - case when id = (select min(id) from app_public.exports where user_id = $1)
           then interval '48 seconds' else interval '5 seconds' end where user_id = $1`, [user.userId]);
      await client.query("select set_config('role', 'app_user', true)");
      const error = (await errorOf(client.query("select app_public.request_export('agent_effectiveness')"))) as { code: string; message: string; detail?: string };
      expect(error.code).toBe("PRRTL");
      // 60 s window - 48 s = 12 s, rounded up; a second may pass between the update and the check.
      const { retryAfterSeconds } = JSON.parse(error.detail!);
      expect(retryAfterSeconds).toBeGreaterThanOrEqual(11);
      expect(retryAfterSeconds).toBeLessThanOrEqual(12);
      expect(error.message).toContain(`Try again in ${retryAfterSeconds} seconds`);
    });
  });
});
