// Input PostgreSQL or the gateway cannot take: malformed JSON, JSON nested far
// deeper than any document of the API, a NUL character or a lone UTF-16
// surrogate. Each is answered 400 with a stable code, on REST and GraphQL
// (in variables and in the document itself), and changes nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";
import { callRest } from "../support/openapi.ts";

const db = useTestDatabase();
let server: RunningServer;
let userId: string;
let token: string;

const RECORD_RUN = "mutation ($run: JSON!) { recordRun(input: { run: $run }) { result } }";
/** A run's JSON, as text, with `prompt` spliced in raw (it may hold JSON escapes). */
const runText = (rawPrompt: string) =>
  `{"prompt":"${rawPrompt}","versions":[{"agent":"syntax","text":"t","scores":{"clarity":5,"specificity":5,"actionability":5,"structure":5,"context_use":5}}],"best_version":0}`;
const NUL = String.raw`before\u0000after`;
const LONE_SURROGATE = String.raw`before\ud800after`;
const DEEP = "[".repeat(20_000) + "]".repeat(20_000);

const stored = async () =>
  (await db.pool.query("select (select count(*)::int from app_public.prompts where user_id = $1) as prompts", [userId])).rows[0].prompts;

beforeAll(async () => {
  userId = await createUser(db.pool);
  token = signTestToken(userId);
  server = await startServer({ databaseUrl: db.url });
});
afterAll(() => server?.stop());

async function postRaw(path: string, body: string) {
  const response = await fetch(`${server.baseUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body,
  });
  const json = (await response.json()) as { error?: { code: string }; errors?: { extensions?: { code?: string } }[] };
  return { status: response.status, code: json.error?.code ?? json.errors?.[0]?.extensions?.code };
}

describe("POST /api/runs", () => {
  it.each([
    ["malformed JSON", '{"prompt": "unfinished', "BAD_JSON"],
    ["JSON nested 20,000 levels deep", `{"prompt":"p","versions":${DEEP}}`, "JSON_TOO_DEEP"],
    ["a NUL character", runText(NUL), "BAD_UNICODE"],
    ["a lone surrogate", runText(LONE_SURROGATE), "BAD_UNICODE"],
  ])("answers %s with 400 and a code, storing nothing", async (_name, body, code) => {
    const answer = await callRest(server.baseUrl, "POST", "/api/runs", { token, body, headers: { "content-type": "application/json" } });
    expect({ status: answer.status, code: answer.body.error.code }).toEqual({ status: 400, code });
    expect(await stored()).toBe(0);
  });
});

describe("recordRun (GraphQL)", () => {
  it.each([
    ["malformed JSON", '{"query": "mutation {', "BAD_JSON"],
    ["variables nested 20,000 levels deep", `{"query":${JSON.stringify(RECORD_RUN)},"variables":{"run":${DEEP}}}`, "JSON_TOO_DEEP"],
    ["a NUL character in the variables", `{"query":${JSON.stringify(RECORD_RUN)},"variables":{"run":${runText(NUL)}}}`, "BAD_UNICODE"],
    ["a lone surrogate in the variables", `{"query":${JSON.stringify(RECORD_RUN)},"variables":{"run":${runText(LONE_SURROGATE)}}}`, "BAD_UNICODE"],
  ])("answers %s with 400 and a code, storing nothing", async (_name, body, code) => {
    expect(await postRaw("/graphql", body)).toEqual({ status: 400, code });
    expect(await stored()).toBe(0);
  });

  const literalRun = (prompt: string) => `mutation { recordRun(input: { run: { prompt: "${prompt}", best_version: 0, versions: [{ agent: "syntax", text: "t",
    scores: { clarity: 5, specificity: 5, actionability: 5, structure: 5, context_use: 5 } }] } }) { result } }`;

  // An escape in the document's own string, so only PostgreSQL sees the NUL: its refusal is answered the same way.
  it("answers a NUL character in the document's own literal with BAD_UNICODE, storing nothing", async () => {
    const response = await graphql(server, literalRun(NUL), {}, token);
    expect({ data: response.data?.recordRun, code: response.errors?.[0]?.extensions?.code }).toEqual({ data: null, code: "BAD_UNICODE" });
    expect(await stored()).toBe(0);
  });

  it("answers a lone surrogate in the document's own literal with GraphQL's syntax error, storing nothing", async () => {
    const response = await graphql(server, literalRun(LONE_SURROGATE), {}, token);
    // A request error answered as application/json (the client sent no Accept) is 200, as the GraphQL-over-HTTP spec asks.
    expect(response).toMatchObject({ status: 200, errors: [{ message: expect.stringMatching(/^Syntax Error: Invalid Unicode escape sequence/) }] });
    expect(await stored()).toBe(0);
  });

  it("still records a run with any well-formed Unicode, astral characters included", async () => {
    const response = await postRaw("/api/runs", runText(String.raw`caf\u00e9 \ud83d\ude00 \u2028`));
    expect(response.status).toBe(201);
    expect(await stored()).toBe(1);
  });
});
