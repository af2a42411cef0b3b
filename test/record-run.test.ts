// app_public.record_run (recordRun, POST /api/runs): a whole agent run in one
// transaction. Each test commits as a user and then reads the tables as the
// owner, so what is checked is what a later reader would find.
import { beforeAll, describe, expect, it } from "vitest";
import { createUser, errorOf, useTestDatabase } from "./support/db.ts";
import { useExportWorker, waitUntil } from "./exports/support.ts";

const db = useTestDatabase();
const RUN_KEY_RETENTION_DAYS = 7;
// For the run_key_retention job.
const worker = useExportWorker(db, { RUN_KEY_RETENTION_DAYS: String(RUN_KEY_RETENTION_DAYS) });
const CRITERIA = ["clarity", "specificity", "actionability", "structure", "context_use"] as const;
let alice: string;
let bob: string;

beforeAll(async () => {
  alice = await createUser(db.pool);
  bob = await createUser(db.pool);
});

interface RunResult { prompt_id: number; version_ids: number[]; best_version_id: number | null; replayed: boolean }

/** Calls record_run as the user in a transaction of its own, and commits. */
function recordRun(userId: string | null, run: unknown): Promise<RunResult> {
  return recordRunAs(userId ? "app_user" : "app_anonymous", userId ?? "", run);
}

/** Calls record_run as `role` with the jwt claim `userId` (may be empty) and commits. */
async function recordRunAs(role: string, userId: string, run: unknown): Promise<RunResult> {
  const client = await db.pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true)", [role, userId]);
    const { rows } = await client.query("select app_public.record_run($1) as result", [JSON.stringify(run)]);
    await client.query("commit");
    return rows[0].result;
  } catch (error) {
    await client.query("rollback");
    throw error;
  } finally {
    client.release();
  }
}

const scores = (value: number) => Object.fromEntries(CRITERIA.map((c) => [c, value]));

function aRun(overrides: Record<string, unknown> = {}) {
  return {
    prompt: "Explain window functions",
    versions: [
      { agent: "syntax", text: "Explain SQL window functions.", explanation: "Grammar", scores: scores(6) },
      { agent: "structure", text: "1. What 2. Why 3. How", scores: scores(7.5) },
      { agent: "domain", text: "Explain window functions with OVER and PARTITION BY.", explanation: "Context", scores: scores(9) },
    ],
    best_version: 2,
    ...overrides,
  };
}

/** Everything of the user's, read as the owner (no RLS). */
async function storedFor(userId: string) {
  const q = async (sql: string) => (await db.pool.query(sql, [userId])).rows;
  return {
    prompts: await q("select id::int, text from app_public.prompts where user_id = $1 order by id"),
    versions: await q("select id::int, prompt_id::int, source, text, explanation from app_public.prompt_versions where user_id = $1 order by id"),
    scores: await q(`select prompt_version_id::int, source, clarity::float8, specificity::float8, actionability::float8, structure::float8,
                       context_use::float8 from app_public.judge_scores where user_id = $1 order by prompt_version_id`),
    heads: await q("select prompt_id::int, prompt_version_id::int from app_public.best_heads where user_id = $1 order by prompt_id"),
    keys: await q("select idempotency_key from app_hidden.recorded_runs where user_id = $1 order by idempotency_key"),
  };
}

describe("record_run", () => {
  it("writes a new prompt, its versions, their scores and the best head, and answers with their ids", async () => {
    const user = await createUser(db.pool);
    const run = aRun();
    const result = await recordRun(user, run);
    const stored = await storedFor(user);
    expect(stored.prompts).toEqual([{ id: result.prompt_id, text: run.prompt }]);
    expect(stored.versions).toEqual(run.versions.map((v, i) => ({
      id: result.version_ids[i], prompt_id: result.prompt_id, source: v.agent, text: v.text, explanation: v.explanation ?? null,
    })));
    expect(stored.scores).toEqual(run.versions.map((v, i) => ({ prompt_version_id: result.version_ids[i], source: v.agent, ...v.scores })));
    expect(stored.heads).toEqual([{ prompt_id: result.prompt_id, prompt_version_id: result.version_ids[2] }]);
    expect(result).toMatchObject({ best_version_id: result.version_ids[2], replayed: false });
    expect(stored.keys).toEqual([]);
  });

  it("adds versions to an existing prompt of the caller's and moves its best head; scores and best head are optional", async () => {
    const user = await createUser(db.pool);
    const first = await recordRun(user, aRun());
    const second = await recordRun(user, { prompt_id: first.prompt_id, versions: [{ agent: "syntax", text: "Shorter", scores: null }], best_version: 0 });
    const third = await recordRun(user, { prompt_id: first.prompt_id, versions: [{ agent: "domain", text: "Unscored, not best" }] });
    expect(second.prompt_id).toBe(first.prompt_id);
    expect(third.best_version_id).toBeNull();
    const stored = await storedFor(user);
    expect(stored.prompts).toHaveLength(1);
    expect(stored.versions.map((v) => v.id)).toEqual([...first.version_ids, ...second.version_ids, ...third.version_ids]);
    expect(stored.scores.map((s) => s.prompt_version_id)).toEqual(first.version_ids);
    expect(stored.heads).toEqual([{ prompt_id: first.prompt_id, prompt_version_id: second.version_ids[0] }]);
  });

  it("returns the first result to a retry with the same idempotency key, and writes once", async () => {
    const user = await createUser(db.pool);
    const run = aRun({ idempotency_key: "run-1" });
    const first = await recordRun(user, run);
    const retry = await recordRun(user, run);
    expect(first.replayed).toBe(false);
    expect(retry).toEqual({ ...first, replayed: true });
    const stored = await storedFor(user);
    expect(stored.prompts).toHaveLength(1);
    expect(stored.versions).toHaveLength(3);
    expect(stored.keys).toEqual([{ idempotency_key: "run-1" }]);
    // Keys are per user: another user's run with the same key is a run of its own.
    const other = await createUser(db.pool);
    expect((await recordRun(other, run)).replayed).toBe(false);
    // A key reused for a different run is refused and changes nothing.
    const error = await errorOf(recordRun(user, aRun({ idempotency_key: "run-1", prompt: "Something else" })));
    expect(error.code).toBe("PRIDM");
    expect(await storedFor(user)).toEqual(stored);
  });

  it("writes once when the retry arrives while the first attempt is still uncommitted", async () => {
    const user = await createUser(db.pool);
    const run = aRun({ idempotency_key: "simultaneous" });
    const first = await db.pool.connect();
    try {
      await first.query("begin");
      await first.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [user]);
      const { rows: [{ result: firstResult }] } = await first.query("select app_public.record_run($1) as result", [JSON.stringify(run)]);
      // The retry waits for the first attempt's claim on the key instead of writing a run of its own.
      const retry = recordRun(user, run);
      await waitUntil(
        async () => (await db.pool.query("select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like '%record_run%'")).rows[0].n,
        (waiting) => waiting === 1,
        "the retry to wait for the first attempt",
      );
      await first.query("commit");
      expect(await retry).toEqual({ ...firstResult, replayed: true });
    } finally {
      first.release();
    }
    expect((await storedFor(user)).versions).toHaveLength(3);
  });

  const badRuns: [string, (run: ReturnType<typeof aRun>) => unknown, string][] = [
    ["an unknown agent", (run) => { run.versions[1].agent = "poet"; return run; }, "versions[1].agent"],
    ["a score above 10", (run) => { run.versions[2].scores.clarity = 10.5; return run; }, "versions[2].scores.clarity"],
    ["a score below 0", (run) => { run.versions[0].scores.context_use = -1; return run; }, "versions[0].scores.context_use"],
    ["a score that is not a number", (run) => { (run.versions[0].scores as Record<string, unknown>).structure = "9"; return run; }, "versions[0].scores.structure"],
    ["a missing criterion", (run) => { delete (run.versions[1].scores as Record<string, unknown>).actionability; return run; }, "versions[1].scores.actionability"],
    ["an unknown criterion", (run) => { (run.versions[1].scores as Record<string, unknown>).style = 5; return run; }, "versions[1].scores.style"],
    ["a best version naming no version", (run) => ({ ...run, best_version: 3 }), "best_version"],
    ["a negative best version", (run) => ({ ...run, best_version: -1 }), "best_version"],
    ["a blank version text", (run) => { run.versions[2].text = "  "; return run; }, "versions[2].text"],
    ["a blank explanation", (run) => { run.versions[0].explanation = ""; return run; }, "versions[0].explanation"],
    ["a version that is not an object", (run) => ({ ...run, versions: [run.versions[0], "v"] }), "versions[1]"],
    ["an unknown version field", (run) => ({ ...run, versions: [{ ...run.versions[0], user_id: 1 }] }), "versions[0].user_id"],
    ["scores that are not an object", (run) => ({ ...run, versions: [run.versions[0], { ...run.versions[1], scores: 7 }] }), "versions[1].scores"],
    ["an agent that is not a string", (run) => { (run.versions[2] as Record<string, unknown>).agent = ["syntax"]; return run; }, "versions[2].agent"],
    // Several problems: the first version's, and in a version the first of the checks in order.
    ["problems in two versions", (run) => { run.versions[2].text = ""; run.versions[1].agent = "poet"; return run; }, "versions[1].agent"],
    ["an unknown field and an unknown agent", (run) => ({ ...run, versions: [{ ...run.versions[0], agent: "poet", mood: 1, colour: 2 }] }), "versions[0].mood"],
    ["a blank text and a score out of range", (run) => { run.versions[0].text = " "; run.versions[0].scores.clarity = 11; return run; }, "versions[0].text"],
    ["two scores out of range", (run) => { run.versions[0].scores.structure = 11; run.versions[0].scores.specificity = -2; return run; }, "versions[0].scores.specificity"],
    ["no versions", (run) => ({ ...run, versions: [] }), "versions"],
    ["a blank prompt", (run) => ({ ...run, prompt: "" }), "prompt"],
    ["both prompt and prompt_id", (run) => ({ ...run, prompt_id: 1 }), "prompt"],
    ["neither prompt nor prompt_id", ({ prompt: _, ...run }) => run, "prompt"],
    ["a prompt_id that is not a whole number", ({ prompt: _, ...run }) => ({ ...run, prompt_id: 1.5 }), "prompt_id"],
    ["an unknown run field", (run) => ({ ...run, user_id: 1 }), "user_id"],
    ["an empty idempotency key", (run) => ({ ...run, idempotency_key: "" }), "idempotency_key"],
    ["a run that is not an object", () => [1], "run"],
  ];
  it.each(badRuns)("fails the whole run on %s, naming the element, and stores nothing", async (_case, spoil, element) => {
    const user = await createUser(db.pool);
    const before = await storedFor(user);
    const error = await errorOf(recordRun(user, spoil({ ...aRun(), idempotency_key: "k" } as ReturnType<typeof aRun>)));
    expect({ code: error.code, element: error.message.split(":")[0] }).toEqual({ code: "PRRUN", element });
    expect(await storedFor(user)).toEqual(before);
  });

  it("does not burn the idempotency key of a failed run", async () => {
    const user = await createUser(db.pool);
    const bad = aRun({ idempotency_key: "again" });
    bad.versions[0].agent = "nobody";
    expect((await errorOf(recordRun(user, bad))).code).toBe("PRRUN");
    expect((await recordRun(user, aRun({ idempotency_key: "again" }))).replayed).toBe(false);
  });

  it("cannot add to another user's prompt: it reads as missing, and nothing is stored", async () => {
    const alicePrompt = (await recordRun(alice, aRun())).prompt_id;
    const before = { alice: await storedFor(alice), bob: await storedFor(bob) };
    const theirs = await errorOf(recordRun(bob, { prompt_id: alicePrompt, versions: [{ agent: "syntax", text: "Mine now" }], best_version: 0 }));
    const missing = await errorOf(recordRun(bob, { prompt_id: 999999999, versions: [{ agent: "syntax", text: "Mine now" }], best_version: 0 }));
    expect(theirs.code).toBe("PRNFD");
    expect(theirs.message.replace(String(alicePrompt), "N")).toBe(missing.message.replace("999999999", "N"));
    expect({ alice: await storedFor(alice), bob: await storedFor(bob) }).toEqual(before);
  });

  it("is not for anonymous callers, or an app_user session that names no user", async () => {
    const before = await db.pool.query("select count(*)::int from app_public.prompts");
    expect((await errorOf(recordRun(null, aRun()))).code).toBe("42501");
    expect((await errorOf(recordRunAs("app_user", "", aRun()))).code).toBe("PRLGN");
    expect(await db.pool.query("select count(*)::int from app_public.prompts")).toMatchObject({ rows: before.rows });
  });

  it("keeps idempotency keys away from every API role: only recordRun reads them, for its caller", async () => {
    await recordRun(alice, aRun({ idempotency_key: "private" }));
    for (const role of ["app_user", "app_admin"]) {
      const client = await db.pool.connect();
      try {
        await client.query("begin");
        await client.query("select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true)", [role, alice]);
        expect((await errorOf(client.query("select idempotency_key from app_hidden.recorded_runs"))).code).toBe("42501");
      } finally {
        await client.query("rollback");
        client.release();
      }
    }
  });

  it("records a run of 50 versions, each with its own scores, in order", async () => {
    const user = await createUser(db.pool);
    const agents = ["syntax", "structure", "domain"];
    const versions = Array.from({ length: 50 }, (_, i) => ({
      agent: agents[i % 3], text: `Version ${i}`, explanation: `Because ${i}`,
      scores: Object.fromEntries(CRITERIA.map((c, j) => [c, ((i * 7 + j) % 101) / 10])),
    }));
    const result = await recordRun(user, { prompt: "Long run", versions, best_version: 37, idempotency_key: "fifty" });
    const stored = await storedFor(user);
    expect(result.version_ids).toHaveLength(50);
    expect(stored.versions).toEqual(versions.map((v, i) => ({
      id: result.version_ids[i], prompt_id: result.prompt_id, source: v.agent, text: v.text, explanation: v.explanation,
    })));
    expect(stored.scores).toEqual(versions.map((v, i) => ({ prompt_version_id: result.version_ids[i], source: v.agent, ...v.scores })));
    expect(stored.heads).toEqual([{ prompt_id: result.prompt_id, prompt_version_id: result.version_ids[37] }]);
    expect(result.best_version_id).toBe(result.version_ids[37]);
  });
});

it("the hourly run_key_retention job forgets keys older than RUN_KEY_RETENTION_DAYS: the runs stay, and the key records a new run", async () => {
  const user = await createUser(db.pool);
  const old = await recordRun(user, aRun({ idempotency_key: "last-week" }));
  const recent = await recordRun(user, aRun({ idempotency_key: "yesterday" }));
  const age = (key: string, days: number) => db.pool.query(
    "update app_hidden.recorded_runs set created_at = now() - make_interval(days => $3) where user_id = $1 and idempotency_key = $2",
    [user, key, days]);
  await age("last-week", RUN_KEY_RETENTION_DAYS + 1);
  await age("yesterday", RUN_KEY_RETENTION_DAYS - 1);

  await db.pool.query("select graphile_worker.add_job('run_key_retention', '{}')");
  const [line] = await waitUntil(
    async () => worker.lines.filter((l) => l.message === "run key retention"),
    (lines) => lines.length === 1,
    "the run key retention job has run",
  );
  expect(line.fields).toMatchObject({ forgottenRunKeys: 1, retentionDays: RUN_KEY_RETENTION_DAYS });
  const stored = await storedFor(user);
  expect(stored.keys).toEqual([{ idempotency_key: "yesterday" }]);
  expect(stored.prompts.map((p: { id: number }) => p.id)).toEqual([old.prompt_id, recent.prompt_id]);

  expect(await recordRun(user, aRun({ idempotency_key: "yesterday" }))).toEqual({ ...recent, replayed: true });
  const again = await recordRun(user, aRun({ idempotency_key: "last-week" }));
  expect(again.replayed).toBe(false);
  expect(again.prompt_id).toBeGreaterThan(recent.prompt_id);
});
