// What exports contain, every kind and every option, compared with a
// recomputation in TypeScript from the tables' rows (./oracle.ts), never with
// the SQL the worker runs: the column each value lands in, row order (the
// fixture's rows lie in the tables in another order than by id), what each
// user may read, Excel escaping of every text cell; also byte-identical
// re-exports, the stale flag and the requests the rules refuse.
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import { actAs, createUser, errorOf, useTestDatabase } from "../support/db.ts";
import { expectedExport } from "./oracle.ts";
import { exportFile, parseCsv, readExport, requestExport, type ExportRow, type SignedIn, unzip, useExportWorker, waitForExport } from "./support.ts";

const db = useTestDatabase();
const exportWorker = useExportWorker(db);
let alice: SignedIn;
let bob: SignedIn;
let admin: SignedIn;
const ids = {} as Record<"tricky" | "long" | "bare" | "bob", string>;

const TRICKY = 'He said "hi, there",\nthen left; a ""doubled"" quote, CRLF\r\nand emoji 🎉👩‍💻 — done';
const LONG = `${'a "quoted", comma\nline '.repeat(20_000)}end`;
/** Cells a spreadsheet would run as formulas: each gets a leading apostrophe with the excel option. */
const FORMULAS = ["=1+2", "+SUM(A1)", "-2 things", "@mention", "\tTabbed", "\rCarriage", " =1+2", "\n@cmd", " \n -1", "\r\n+1"];
/** Cells that merely look close: left as they are. */
const HARMLESS = [" plain", "\nplain", "a=1", "'quoted already", "–en dash"];
const KINDS = ["multi_agent_log", "prompt_versions", "judge_scores", "agent_effectiveness", "all"];

async function sql(text: string, values: unknown[] = []): Promise<string> {
  const { rows } = await db.pool.query<{ id: string }>(text, values);
  return rows[0]?.id;
}
const addPrompt = (user: SignedIn, text: string) =>
  sql("insert into app_public.prompts (user_id, text) values ($1, $2) returning id", [user.userId, text]);
const addVersion = (user: SignedIn, promptId: string, source: string, text: string, explanation: string | null = null) =>
  sql(
    "insert into app_public.prompt_versions (prompt_id, user_id, source, text, explanation) values ($1, $2, $3, $4, $5) returning id",
    [promptId, user.userId, source, text, explanation],
  );
/** Scores the criteria `value`, `value + 0.1`, ... `value + 0.4`: each its own number, so a swapped column shows. */
const score = (user: SignedIn, versionId: string, value: number) =>
  sql(
    "insert into app_public.judge_scores (prompt_version_id, user_id, clarity, specificity, actionability, structure, context_use) values ($1, $2, $3, $3 + 0.1, $3 + 0.2, $3 + 0.3, $3 + 0.4) returning id",
    [versionId, user.userId, value],
  );
const total = (value: number) => (5 * value + 1).toFixed(1);
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
  await score(alice, await addVersion(alice, ids.tricky, "syntax", "older syntax version", "=cmd|' /C calc'!A0"), 1);
  // The newest syntax version has no score yet, so the syntax score is empty.
  await addVersion(alice, ids.tricky, "syntax", "newer syntax version");
  const head = await addVersion(alice, ids.tricky, "structure", TRICKY.toUpperCase(), TRICKY);
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
  // Every free-text column (prompt text, version text, explanation) holds each formula and each harmless look-alike.
  for (const cell of [...FORMULAS, ...HARMLESS]) {
    const prompt = await addPrompt(alice, cell);
    const version = await addVersion(alice, prompt, "alpha", `${cell} improved`, cell);
    await score(alice, version, 6);
    await setHead(alice, prompt, version);
  }

  ids.bob = await addPrompt(bob, "bob's secret prompt");
  const bobsVersion = await addVersion(bob, ids.bob, "syntax", "bob's secret version", "bob's secret explanation");
  await score(bob, bobsVersion, 9);
  await setHead(bob, ids.bob, bobsVersion);

  // Rewrite the oldest rows, so a table read in its physical order is not in id order.
  await db.pool.query("update app_public.prompts set text = text || '' where id in (select id from app_public.prompts order by id limit 3)");
  await db.pool.query("update app_public.prompt_versions set explanation = coalesce(explanation, 'rewritten') where id in (select id from app_public.prompt_versions order by id limit 3)");
  await db.pool.query("update app_public.judge_scores set clarity = clarity where id in (select id from app_public.judge_scores order by id limit 3)");
}, 60_000);

/**
 * Exports and waits; returns the finished row and the file's bytes. Ages the
 * user's earlier requests, so this file's many exports stay clear of the
 * per-minute rate limit (which has tests of its own below and in concurrency.test.ts).
 */
async function runExport(actor: SignedIn, kind: string, options: { gzip?: boolean; excel?: boolean } = {}) {
  await db.pool.query("update app_public.exports set requested_at = requested_at - interval '1 minute' where user_id = $1", [actor.userId]);
  const row = await waitForExport(db.pool, await requestExport(db.pool, actor, kind, options));
  return { row, file: await exportFile(exportWorker.dir, row) };
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** The CSV files of an export, by name, parsed; with excel, each must start with a BOM. */
function contentsOf(row: ExportRow, file: Buffer, excel: boolean): Map<string, string[][]> {
  const entries = row.kind === "all" ? [...unzip(file)] : [[`${row.kind}.csv`, row.file_name!.endsWith(".gz") ? gunzipSync(file) : file] as const];
  return new Map(
    entries.map(([name, data]) => {
      expect(data.subarray(0, 3).equals(BOM), `${name} starts with a BOM`).toBe(excel);
      return [name, parseCsv(excel ? data.subarray(3) : data)];
    }),
  );
}

/** A file's column, by header name, without the header. */
const column = (csv: string[][], name: string) => csv.slice(1).map((row) => row[csv[0].indexOf(name)]);

describe("the fixture", () => {
  it("lies in the tables in another order than by id, so an export without ORDER BY shows", async () => {
    for (const table of ["prompts", "prompt_versions", "judge_scores"]) {
      const { rows } = await db.pool.query<{ id: string }>(`select id from app_public.${table}`);
      const physical = rows.map((row) => row.id);
      expect(physical, table).not.toEqual([...physical].sort((a, b) => Number(a) - Number(b)));
    }
  });

  it("gives each kind different contents for Alice, Bob and an admin, so a leak across users shows", async () => {
    for (const kind of KINDS) {
      const [alices, bobs, everyones] = await Promise.all([alice, bob, admin].map((actor) => expectedExport(db.pool, actor, kind)));
      for (const [name, rows] of alices) {
        expect(rows, name).not.toEqual(everyones.get(name));
        expect(bobs.get(name), name).not.toEqual(everyones.get(name));
      }
    }
  });
});

describe("contents", () => {
  it.each(KINDS.flatMap((kind) => [[kind, "alice"], [kind, "bob"], [kind, "admin"]]))(
    "%s as %s holds exactly the recomputed rows: only theirs (everyone's for an admin), by id",
    async (kind, who) => {
      const actor = { alice, bob, admin }[who]!;
      const { row, file } = await runExport(actor, kind);
      const contents = contentsOf(row, file, false);
      const expected = await expectedExport(db.pool, actor, kind);
      expect([...contents]).toEqual([...expected]);
      expect(row).toMatchObject({ status: "succeeded", attempts: 1, error_message: null, stale: false });
      expect(row.rows).toBe(String([...expected.values()].reduce((sum, rows) => sum + rows.length - 1, 0)));
      expect(row.sha256).toBe(createHash("sha256").update(file).digest("hex"));
      expect(row.bytes).toBe(String(file.length));
      if (who === "alice") expect(file.includes("bob's secret")).toBe(false);
    },
  );

  it("multi_agent_log: the seed's columns, then later agents by name; each rule of the recomputation is exercised", async () => {
    const { file } = await runExport(alice, "multi_agent_log");
    const csv = parseCsv(file);
    expect(csv[0]).toEqual([
      "request_id", "timestamp", "original_prompt", "final_prompt", "selected_agent",
      "syntax_score", "structure_score", "domain_score", "alpha_score", "zeta_score",
    ]);
    const tricky = csv.find((r) => r[0] === ids.tricky)!;
    expect(tricky[1]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(tricky.slice(2, 5)).toEqual([TRICKY, TRICKY.toUpperCase(), "structure"]);
    // syntax: its newest version is unscored; structure: the later of two tied versions.
    expect(tricky.slice(5)).toEqual(["", total(4), "", "", total(7)]);
    expect(csv.find((r) => r[0] === ids.long)![2]).toBe(LONG);
    expect(csv.find((r) => r[0] === ids.bare)!.slice(3)).toEqual(["", "", "", "", "", "", ""]);
  });
});

describe("options", () => {
  it.each(KINDS)("excel: %s has a BOM in each file and every text cell escaped as recomputed", async (kind) => {
    const { row, file } = await runExport(alice, kind, { excel: true });
    const contents = contentsOf(row, file, true);
    expect([...contents]).toEqual([...(await expectedExport(db.pool, alice, kind, { excel: true }))]);
    // The fixture puts each formula in every free-text column this kind has.
    const freeText = {
      "multi_agent_log.csv": ["original_prompt"],
      "prompt_versions.csv": ["explanation"],
    } as Record<string, string[]>;
    for (const [name, csv] of contents) {
      for (const header of freeText[name] ?? []) {
        const cells = column(csv, header);
        for (const formula of FORMULAS) expect(cells, `${name} ${header}`).toContain(`'${formula}`);
        for (const harmless of HARMLESS) expect(cells, `${name} ${header}`).toContain(harmless);
      }
    }
  });

  it.each(KINDS.filter((kind) => kind !== "all").flatMap((kind) => [[kind, false], [kind, true]] as const))(
    "gzip: %s (excel %s) is a .csv.gz of the recomputed rows",
    async (kind, excel) => {
      const { row, file } = await runExport(alice, kind, { gzip: true, excel });
      expect(row.file_name).toMatch(/\.csv\.gz$/);
      expect([...contentsOf(row, file, excel)]).toEqual([...(await expectedExport(db.pool, alice, kind, { excel }))]);
      expect(row).toMatchObject({ bytes: String(file.length), sha256: createHash("sha256").update(file).digest("hex") });
    },
  );

  it("gzip holds exactly the plain export's bytes", async () => {
    const plain = await runExport(bob, "prompt_versions");
    const zipped = await runExport(bob, "prompt_versions", { gzip: true });
    expect(gunzipSync(zipped.file)).toEqual(plain.file);
    expect(zipped.row.rows).toBe(plain.row.rows);
  });
});

describe("freshness", () => {
  it("re-exporting unchanged data gives the same bytes; a write shows up in the next export", async () => {
    const first = await runExport(bob, "multi_agent_log");
    const second = await runExport(bob, "multi_agent_log");
    expect(second.row.sha256).toBe(first.row.sha256);
    expect(second.file).toEqual(first.file);
    expect(first.row.file_name).not.toBe(second.row.file_name);

    const added = await addPrompt(bob, "written after the export");
    const third = await runExport(bob, "multi_agent_log");
    expect(column(parseCsv(third.file), "request_id")).toContain(added);
    expect(third.row.stale).toBe(false);
  });

  it("an admin's export is fresh when it finishes and stale after any user's write; a user's only after their own", async () => {
    const carol: SignedIn = { role: "app_user", userId: await createUser(db.pool) };
    const everyones = (await runExport(admin, "agent_effectiveness")).row.id;
    const alices = (await runExport(alice, "judge_scores")).row.id;
    const carols = (await runExport(carol, "prompt_versions")).row.id;
    const stale = async () => Promise.all([everyones, alices, carols].map(async (id) => (await readExport(db.pool, id)).stale));
    expect(await stale()).toEqual([false, false, false]);

    // Carol's write: the admin's export saw it change, Alice's did not.
    await addPrompt(carol, "carol writes");
    expect(await stale()).toEqual([true, false, true]);

    // A fresh admin export, then Alice's write (the admin has no data of their own).
    const again = (await runExport(admin, "agent_effectiveness")).row.id;
    expect((await readExport(db.pool, again)).stale).toBe(false);
    await addPrompt(alice, "alice writes");
    expect((await readExport(db.pool, again)).stale).toBe(true);
    expect((await readExport(db.pool, alices)).stale).toBe(true);
    expect((await readExport(db.pool, carols)).stale).toBe(true);
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
    const error = await errorOf(actAs(db.pool, alice, (client) => client.query("select * from app_hidden.export_parts('everything')")));
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
