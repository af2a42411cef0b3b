// Another user's version or prompt must be indistinguishable from one that
// does not exist: every write against it fails with the same SQLSTATE and the
// same message (up to the id), in SQL and through GraphQL. Before, the
// SQLSTATE told unscored (23503) from scored (23505) from missing (23502).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type pg from "pg";
import { actAs, createUser, errorOf, useTestDatabase } from "./support/db.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "./support/server.ts";

const db = useTestDatabase();
let alice: string;
let bob: string;
// Alice's rows: a prompt with a scored, crowned version and one without score or head.
const her = {} as Record<"prompt" | "bareprompt" | "scored" | "unscored" | "bareVersion", string>;
let bobVersion: string;
let missing: string;

async function asUser<T>(userId: string, work: (client: pg.PoolClient) => Promise<T>) {
  return actAs(db.pool, { role: "app_user", userId }, work);
}

async function insertAs(userId: string, sql: string, params: unknown[]): Promise<string> {
  const client = await db.pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [userId]);
    const { rows } = await client.query(sql, params);
    await client.query("commit");
    return rows[0]?.id;
  } finally {
    client.release();
  }
}

beforeAll(async () => {
  alice = await createUser(db.pool);
  bob = await createUser(db.pool);
  const version = "insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'v', $2) returning id";
  her.prompt = await insertAs(alice, "insert into app_public.prompts (text) values ('hers') returning id", []);
  her.bareprompt = await insertAs(alice, "insert into app_public.prompts (text) values ('hers, no head') returning id", []);
  her.scored = await insertAs(alice, version, [her.prompt, "syntax"]);
  her.unscored = await insertAs(alice, version, [her.prompt, "domain"]);
  her.bareVersion = await insertAs(alice, version, [her.bareprompt, "domain"]);
  await insertAs(alice, "insert into app_public.judge_scores (prompt_version_id, clarity, specificity, actionability, structure, context_use) values ($1, 1, 1, 1, 1, 1)", [her.scored]);
  await insertAs(alice, "insert into app_public.best_heads (prompt_id, prompt_version_id) values ($1, $2)", [her.prompt, her.scored]);
  const bobPrompt = await insertAs(bob, "insert into app_public.prompts (text) values ('his') returning id", []);
  bobVersion = await insertAs(bob, version, [bobPrompt, "syntax"]);
  missing = String(BigInt((await db.pool.query("select max(id) as id from app_public.prompt_versions")).rows[0].id) + 1000n);
});

/** The error with the id in its message replaced, so errors about different ids compare. */
const shape = (error: { code: string; message: string }, id: string) =>
  ({ code: error.code, message: error.message.replaceAll(id, "<id>") });

const SCORE = "insert into app_public.judge_scores (prompt_version_id, clarity, specificity, actionability, structure, context_use) values ($1, 1, 1, 1, 1, 1)";

describe("in SQL, Bob writing against Alice's rows", () => {
  async function bobFails(sql: string, params: (id: string) => unknown[], id: string) {
    return shape(await asUser(bob, (c) => errorOf(c.query(sql, params(id)))), id);
  }

  it.each([
    ["a judge score on her unscored version", () => her.unscored],
    ["a judge score on her scored version", () => her.scored],
  ])("%s fails like one on a missing version", async (_name, target) => {
    const mine = await bobFails(SCORE, (id) => [id], target());
    expect(mine).toEqual(await bobFails(SCORE, (id) => [id], missing));
    expect(mine.code).toBe("PRNFD");
  });

  const head = "insert into app_public.best_heads (prompt_id, prompt_version_id) values ($1, $2)";
  it.each([
    ["her crowned prompt", () => her.prompt],
    ["her prompt without a head", () => her.bareprompt],
  ])("a best head on %s (with his own version) fails like one on a missing prompt", async (_name, target) => {
    const theirs = await bobFails(head, (id) => [id, bobVersion], target());
    expect(theirs).toEqual(await bobFails(head, (id) => [id, bobVersion], missing));
    expect(theirs.code).toBe("PRNFD");
  });

  it("a best head naming her version fails like one naming a missing version", async () => {
    const theirs = await bobFails(head, (id) => [her.bareprompt, id], her.bareVersion);
    expect(theirs).toEqual(await bobFails(head, (id) => [her.bareprompt, id], missing));
  });

  it("set_best_head on her version fails like one on a missing version", async () => {
    const call = "select app_public.set_best_head($1)";
    expect(await bobFails(call, (id) => [id], her.unscored)).toEqual(await bobFails(call, (id) => [id], missing));
  });

  it("a version of her prompt fails like one of a missing prompt", async () => {
    const sql = "insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'x', 'syntax')";
    expect(await bobFails(sql, (id) => [id], her.prompt)).toEqual(await bobFails(sql, (id) => [id], missing));
  });

  it("an admin writing against her rows gets the same answers", async () => {
    const admin = await createUser(db.pool, { admin: true });
    const fails = async (id: string) =>
      shape(await actAs(db.pool, { role: "app_admin", userId: admin }, (c) => errorOf(c.query(SCORE, [id]))), id);
    expect(await fails(her.scored)).toEqual(await fails(missing));
  });

  it("changed nothing of hers", async () => {
    const { rows } = await db.pool.query(
      `select (select count(*)::int from app_public.judge_scores where user_id = $1) as scores,
              (select count(*)::int from app_public.best_heads where user_id = $1) as heads,
              (select count(*)::int from app_public.prompt_versions where user_id = $1) as versions`, [alice]);
    expect(rows[0]).toEqual({ scores: 1, heads: 1, versions: 3 });
  });
});

describe("through GraphQL", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ databaseUrl: db.url });
  });
  afterAll(() => server?.stop());

  async function bobFails(query: string, id: string, variables: (id: string) => Record<string, unknown>) {
    const response = await graphql(server, query, variables(id), signTestToken(bob));
    expect(response.data ? Object.values(response.data) : [null]).toEqual([null]);
    const [error] = response.errors!;
    return { code: error.extensions?.code, message: error.message.replaceAll(id, "<id>") };
  }

  const createJudgeScore = `mutation ($v: BigInt!) { createJudgeScore(input: { judgeScore: { promptVersionId: $v, clarity: "1", specificity: "1", actionability: "1", structure: "1", contextUse: "1" } }) { judgeScore { rowId } } }`;
  const createBestHead = `mutation ($p: BigInt!, $v: BigInt!) { createBestHead(input: { bestHead: { promptId: $p, promptVersionId: $v } }) { bestHead { promptId } } }`;
  const setBestHead = `mutation ($v: BigInt!) { setBestHead(input: { promptVersionId: $v }) { result { promptId } } }`;
  const createPromptVersion = `mutation ($p: BigInt!) { createPromptVersion(input: { promptVersion: { promptId: $p, text: "x", source: "syntax" } }) { promptVersion { rowId } } }`;

  it("createJudgeScore on her scored and unscored versions answers like a missing version", async () => {
    const expected = await bobFails(createJudgeScore, missing, (v) => ({ v }));
    expect(expected.code).toBe("PRNFD");
    expect(await bobFails(createJudgeScore, her.scored, (v) => ({ v }))).toEqual(expected);
    expect(await bobFails(createJudgeScore, her.unscored, (v) => ({ v }))).toEqual(expected);
  });

  it("createBestHead on her prompts answers like a missing prompt", async () => {
    const expected = await bobFails(createBestHead, missing, (p) => ({ p, v: bobVersion }));
    expect(await bobFails(createBestHead, her.prompt, (p) => ({ p, v: bobVersion }))).toEqual(expected);
    expect(await bobFails(createBestHead, her.bareprompt, (p) => ({ p, v: bobVersion }))).toEqual(expected);
  });

  it("setBestHead and createPromptVersion on her rows answer like missing ones", async () => {
    expect(await bobFails(setBestHead, her.unscored, (v) => ({ v }))).toEqual(await bobFails(setBestHead, missing, (v) => ({ v })));
    expect(await bobFails(createPromptVersion, her.prompt, (p) => ({ p }))).toEqual(await bobFails(createPromptVersion, missing, (p) => ({ p })));
  });
});
