// recordRun through the gateway: the GraphQL mutation and POST /api/runs take
// the same JSON, run as the caller, and answer bad elements, other users'
// prompts and reused keys with stable codes and fitting statuses.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";
import { callRest } from "../support/openapi.ts";

const db = useTestDatabase();
let server: RunningServer;
const users = { a: { id: "", token: "" }, b: { id: "", token: "" } };

const RECORD_RUN = "mutation ($run: JSON!) { recordRun(input: { run: $run }) { result } }";

function aRun(overrides: Record<string, unknown> = {}) {
  const scores = (x: number) => ({ clarity: x, specificity: x, actionability: x, structure: x, context_use: x });
  return {
    prompt: "Summarise a contract",
    versions: [
      { agent: "syntax", text: "Summarise this contract.", scores: scores(5) },
      { agent: "structure", text: "Summarise: parties, terms, risks.", explanation: "Sections", scores: scores(8) },
      { agent: "domain", text: "Summarise the contract's liabilities.", scores: scores(7) },
    ],
    best_version: 1,
    ...overrides,
  };
}

/** POST /api/runs; every answer is checked against the OpenAPI document. */
async function postRun(body: string, token?: string, contentType = "application/json") {
  const answer = await callRest(server.baseUrl, "POST", "/api/runs", { token, body, headers: { "content-type": contentType } });
  return { status: answer.status, body: answer.body };
}

const storedVersions = async (userId: string) =>
  (await db.pool.query("select count(*)::int as n from app_public.prompt_versions where user_id = $1", [userId])).rows[0].n;

beforeAll(async () => {
  for (const name of ["a", "b"] as const) {
    const id = await createUser(db.pool);
    users[name] = { id, token: signTestToken(id) };
  }
  server = await startServer({ databaseUrl: db.url });
});
afterAll(() => server?.stop());

describe("recordRun (GraphQL)", () => {
  it("records a run and replays it for a retry with the same key", async () => {
    const run = aRun({ idempotency_key: "graphql-1" });
    const first = await graphql(server, RECORD_RUN, { run }, users.a.token);
    expect(first.errors).toBeUndefined();
    const result = first.data!.recordRun.result;
    expect(result).toMatchObject({ replayed: false, best_version_id: result.version_ids[1] });
    const { rows } = await db.pool.query("select id::int from app_public.prompt_versions where prompt_id = $1 order by id", [result.prompt_id]);
    expect(rows.map((r) => r.id)).toEqual(result.version_ids);
    const retry = await graphql(server, RECORD_RUN, { run }, users.a.token);
    expect(retry.data!.recordRun.result).toEqual({ ...result, replayed: true });
    expect(await storedVersions(users.a.id)).toBe(3);
  });

  it("names the bad element with code PRRUN and stores nothing", async () => {
    const before = await storedVersions(users.a.id);
    const run = aRun();
    run.versions[2].scores.clarity = 11;
    const response = await graphql(server, RECORD_RUN, { run }, users.a.token);
    expect(response.errors![0]).toMatchObject({ extensions: { code: "PRRUN" } });
    expect(response.errors![0].message).toMatch(/^versions\[2\]\.scores\.clarity: /);
    expect(await storedVersions(users.a.id)).toBe(before);
  });

  it("is refused to anonymous callers", async () => {
    const response = await graphql(server, RECORD_RUN, { run: aRun() });
    expect(response.errors![0].extensions?.code).toBe("42501");
  });
});

describe("POST /api/runs", () => {
  it("answers 201 with the ids, then 200 with the same ids for a retry", async () => {
    const body = JSON.stringify(aRun({ idempotency_key: "rest-1" }));
    const first = await postRun(body, users.b.token);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ success: true, run: { replayed: false } });
    expect(first.body.run.version_ids).toHaveLength(3);
    const retry = await postRun(body, users.b.token);
    expect(retry).toEqual({ status: 200, body: { success: true, run: { ...first.body.run, replayed: true } } });
    expect(await storedVersions(users.b.id)).toBe(3);
  });

  it("answers 409 PRIDM for a key reused with a different run", async () => {
    await postRun(JSON.stringify(aRun({ idempotency_key: "rest-2" })), users.b.token);
    const reused = await postRun(JSON.stringify(aRun({ idempotency_key: "rest-2", prompt: "Another" })), users.b.token);
    expect(reused).toMatchObject({ status: 409, body: { success: false, error: { code: "PRIDM" } } });
  });

  it("answers 400 PRRUN naming the element", async () => {
    const run = aRun();
    run.versions[0].agent = "nobody";
    const response = await postRun(JSON.stringify(run), users.b.token);
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe("PRRUN");
    expect(response.body.error.message).toMatch(/^versions\[0\]\.agent: /);
  });

  it("answers 404 for another user's prompt, as for a missing one", async () => {
    const theirs = (await graphql(server, RECORD_RUN, { run: aRun() }, users.a.token)).data!.recordRun.result.prompt_id;
    const run = { prompt_id: theirs, versions: [{ agent: "syntax", text: "Taken over" }] };
    const response = await postRun(JSON.stringify(run), users.b.token);
    expect(response).toMatchObject({ status: 404, body: { error: { code: "PRNFD" } } });
  });

  it("refuses anonymous callers and forged tokens, and bodies that are not JSON", async () => {
    expect((await postRun(JSON.stringify(aRun()))).status).toBe(401);
    const forged = signTestToken(users.b.id, { secret: "not-the-server-secret-0123456789abcdef" });
    expect((await postRun(JSON.stringify(aRun()), forged)).status).toBe(401);
    expect(await postRun("prompt=x", users.b.token, "application/x-www-form-urlencoded")).toMatchObject({ status: 415 });
  });
});
