// GraphQL as users use it: writing prompts, versions, scores and best heads,
// reading them back filtered and paginated, aggregates by agent, RLS between
// users, and which errors reach the client (and which are masked).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wilson } from "../analytics/oracle.ts";
import { waitUntil } from "../exports/support.ts";
import { createUser, useTestDatabase } from "../support/db.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
const tokens = { a: "", b: "", admin: "" };

// Per version: the prompt (index), its agent, the five criteria (all equal here) and whether it wins.
const A_VERSIONS = [
  { prompt: 0, source: "syntax", criterion: 2, best: false },
  { prompt: 0, source: "structure", criterion: 4, best: false },
  { prompt: 0, source: "domain", criterion: 6, best: true },
  { prompt: 1, source: "syntax", criterion: 8, best: true },
  { prompt: 1, source: "structure", criterion: 1, best: false },
];
const B_VERSIONS = [{ prompt: 0, source: "syntax", criterion: 3, best: true }];
const ids = { a: { prompts: [] as string[], versions: [] as string[] }, b: { prompts: [] as string[], versions: [] as string[] } };

async function ok(query: string, variables: Record<string, unknown>, token: string) {
  const response = await graphql(server, query, variables, token);
  expect(response.errors).toBeUndefined();
  return response.data!;
}

async function writeThroughGraphQL(token: string, promptCount: number, versions: typeof A_VERSIONS, into: typeof ids.a) {
  for (let i = 0; i < promptCount; i++) {
    const data = await ok("mutation ($t: String!) { createPrompt(input: { prompt: { text: $t } }) { prompt { rowId } } }", { t: `Prompt ${i}` }, token);
    into.prompts.push(data.createPrompt.prompt.rowId);
  }
  for (const version of versions) {
    const data = await ok(
      `mutation ($p: BigInt!, $s: String!) {
         createPromptVersion(input: { promptVersion: { promptId: $p, text: "Improved", explanation: "Why", source: $s } }) { promptVersion { rowId } }
       }`,
      { p: into.prompts[version.prompt], s: version.source }, token);
    const versionId = data.createPromptVersion.promptVersion.rowId;
    into.versions.push(versionId);
    const c = String(version.criterion);
    await ok(
      `mutation ($v: BigInt!, $c: BigFloat!) {
         createJudgeScore(input: { judgeScore: { promptVersionId: $v, clarity: $c, specificity: $c, actionability: $c, structure: $c, contextUse: $c } }) { judgeScore { total } }
       }`,
      { v: versionId, c }, token);
    if (version.best) {
      await ok("mutation ($v: BigInt!) { setBestHead(input: { promptVersionId: $v }) { result { promptId } } }", { v: versionId }, token);
    }
  }
}

/** Per agent, as the seed computes it: versions, wins, and the judges' totals. */
function expectedPerAgent(versions: typeof A_VERSIONS) {
  const agents: Record<string, { total: number; wins: number; scores: number[] }> = {};
  for (const v of versions) {
    const agent = (agents[v.source] ??= { total: 0, wins: 0, scores: [] });
    agent.total++;
    if (v.best) agent.wins++;
    agent.scores.push(v.criterion * 5);
  }
  return agents;
}

beforeAll(async () => {
  const [a, b, admin] = [await createUser(db.pool), await createUser(db.pool), await createUser(db.pool, { admin: true })];
  tokens.a = signTestToken(a);
  tokens.b = signTestToken(b);
  tokens.admin = signTestToken(admin, { admin: true });
  server = await startServer({ databaseUrl: db.url });
  await writeThroughGraphQL(tokens.a, 2, A_VERSIONS, ids.a);
  await writeThroughGraphQL(tokens.b, 1, B_VERSIONS, ids.b);
});
afterAll(() => server?.stop());

const GROUPED = `{
  allPromptVersions { totalCount groupedAggregates(groupBy: [SOURCE]) { keys distinctCount { rowId } } }
  allJudgeScores { aggregates { sum { total } } groupedAggregates(groupBy: [SOURCE]) { keys sum { total } average { total } } }
  allAgentEffectivenesses(orderBy: AGENT_ASC) { nodes { agent wins total winRate avgScore winRateLower winRateUpper } }
}`;

function expectedGrouped(versions: typeof A_VERSIONS) {
  const agents = Object.entries(expectedPerAgent(versions)).sort(([x], [y]) => x.localeCompare(y));
  const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
  return {
    versions: agents.map(([agent, s]) => ({ keys: [agent], distinctCount: { rowId: String(s.total) } })),
    scores: agents.map(([agent, s]) => ({ keys: [agent], sum: Number(sum(s.scores)), average: sum(s.scores) / s.scores.length })),
    effectiveness: ["domain", "structure", "syntax"].map((agent) => {
      const s = expectedPerAgent(versions)[agent] ?? { total: 0, wins: 0, scores: [] };
      return {
        agent,
        wins: String(s.wins),
        total: String(s.total),
        winRate: s.total ? s.wins / s.total : 0,
        avgScore: s.scores.length ? sum(s.scores) / s.scores.length : 0,
        // Floating point: the recomputed interval to 12 places.
        winRateLower: expect.closeTo(wilson(s.wins, s.total)[0], 12),
        winRateUpper: expect.closeTo(wilson(s.wins, s.total)[1], 12),
      };
    }),
  };
}

function actualGrouped(data: Record<string, any>) {
  const bySource = (a: { keys: string[] }, b: { keys: string[] }) => a.keys[0].localeCompare(b.keys[0]);
  return {
    versions: [...data.allPromptVersions.groupedAggregates].sort(bySource),
    scores: [...data.allJudgeScores.groupedAggregates].sort(bySource).map((g) => ({
      keys: g.keys, sum: Number(g.sum.total), average: Number(g.average.total),
    })),
    effectiveness: data.allAgentEffectivenesses.nodes,
  };
}

describe("aggregates by agent (source)", () => {
  it("a user's aggregates and groupedAggregates cover exactly their own versions and scores", async () => {
    const data = await ok(GROUPED, {}, tokens.a);
    expect(data.allPromptVersions.totalCount).toBe(A_VERSIONS.length);
    expect(actualGrouped(data)).toEqual(expectedGrouped(A_VERSIONS));
    expect(Number(data.allJudgeScores.aggregates.sum.total)).toBe(A_VERSIONS.reduce((s, v) => s + v.criterion * 5, 0));
  });

  it("another user's figures are theirs alone; an admin's are everyone's", async () => {
    expect(actualGrouped(await ok(GROUPED, {}, tokens.b))).toEqual(expectedGrouped(B_VERSIONS));
    const everyone = [...A_VERSIONS, ...B_VERSIONS];
    const admin = await ok(GROUPED, {}, tokens.admin);
    expect(admin.allPromptVersions.totalCount).toBe(everyone.length);
    expect(actualGrouped(admin)).toEqual(expectedGrouped(everyone));
  });
});

describe("listing, filtering and paginating", () => {
  it("pages through the user's prompts with cursors", async () => {
    const page = `query ($after: Cursor) { allPrompts(first: 1, after: $after, orderBy: ROW_ID_ASC) {
      totalCount nodes { rowId } pageInfo { hasNextPage endCursor } } }`;
    const first = (await ok(page, {}, tokens.a)).allPrompts;
    expect(first).toMatchObject({ totalCount: 2, nodes: [{ rowId: ids.a.prompts[0] }], pageInfo: { hasNextPage: true } });
    const second = (await ok(page, { after: first.pageInfo.endCursor }, tokens.a)).allPrompts;
    expect(second).toMatchObject({ nodes: [{ rowId: ids.a.prompts[1] }], pageInfo: { hasNextPage: false } });
  });

  it("filters versions by agent", async () => {
    const data = await ok(`{ allPromptVersions(filter: { source: { equalTo: "syntax" } }, orderBy: ROW_ID_ASC) { nodes { rowId } } }`, {}, tokens.a);
    const syntax = A_VERSIONS.flatMap((v, i) => (v.source === "syntax" ? [{ rowId: ids.a.versions[i] }] : []));
    expect(data.allPromptVersions.nodes).toEqual(syntax);
  });
});

describe("row level security through GraphQL", () => {
  it("user B sees none of A's prompts, versions, scores, best heads or exports", async () => {
    await ok(`mutation { requestExport(input: { kind: "prompt_versions" }) { result { rowId } } }`, {}, tokens.a);
    const data = await ok(
      `query ($p: BigInt!, $v: BigInt!) {
         promptByRowId(rowId: $p) { rowId }
         promptVersionByRowId(rowId: $v) { rowId }
         judgeScoreByPromptVersionId(promptVersionId: $v) { rowId }
         bestHeadByPromptId(promptId: $p) { promptId }
         allPrompts { nodes { rowId } }
         allPromptVersions { nodes { rowId } }
         allJudgeScores { totalCount }
         allBestHeads { totalCount }
         allExports { totalCount }
       }`,
      { p: ids.a.prompts[0], v: ids.a.versions[0] }, tokens.b);
    expect(data).toEqual({
      promptByRowId: null,
      promptVersionByRowId: null,
      judgeScoreByPromptVersionId: null,
      bestHeadByPromptId: null,
      allPrompts: { nodes: [{ rowId: ids.b.prompts[0] }] },
      allPromptVersions: { nodes: [{ rowId: ids.b.versions[0] }] },
      allJudgeScores: { totalCount: 1 },
      allBestHeads: { totalCount: 1 },
      allExports: { totalCount: 0 },
    });
    expect((await ok("{ allExports { totalCount } }", {}, tokens.a)).allExports.totalCount).toBe(1);
    expect((await ok("{ allExports { totalCount } }", {}, tokens.admin)).allExports.totalCount).toBe(1);
  });

  it("user B can neither change, delete nor build on A's rows", async () => {
    const aPrompt = ids.a.prompts[0];
    const update = await graphql(server, `mutation ($p: BigInt!) { updatePromptByRowId(input: { rowId: $p, promptPatch: { text: "hijacked" } }) { prompt { rowId } } }`, { p: aPrompt }, tokens.b);
    expect(update.data).toEqual({ updatePromptByRowId: { prompt: null } });
    const remove = await graphql(server, `mutation ($p: BigInt!) { deletePromptByRowId(input: { rowId: $p }) { prompt { rowId } } }`, { p: aPrompt }, tokens.b);
    expect(remove.errors?.[0].extensions?.code).toBe("NOT_FOUND");
    const version = await graphql(server, `mutation ($p: BigInt!) { createPromptVersion(input: { promptVersion: { promptId: $p, text: "x", source: "syntax" } }) { promptVersion { rowId } } }`, { p: aPrompt }, tokens.b);
    expect(version.errors?.[0]).toMatchObject({ extensions: { code: "23503" }, message: expect.stringContaining('"prompt_versions_prompt_fkey"') });
    const best = await graphql(server, `mutation ($v: BigInt!) { setBestHead(input: { promptVersionId: $v }) { result { promptId } } }`, { v: ids.a.versions[0] }, tokens.b);
    expect(best.errors?.[0].extensions?.code).toBe("PRNFD");

    const { rows } = await db.pool.query("select text, (select count(*)::int from app_public.prompt_versions where prompt_id = $1) as versions, (select prompt_version_id::text from app_public.best_heads where prompt_id = $1) as best from app_public.prompts where id = $1", [aPrompt]);
    expect(rows[0]).toEqual({ text: "Prompt 0", versions: 3, best: ids.a.versions[2] });
  });

  it("anonymous callers may read nothing", async () => {
    const response = await graphql(server, "{ allPrompts { totalCount } }");
    expect(response.errors?.[0].extensions?.code).toBe("42501");
  });
});

describe("errors", () => {
  it("passes constraint violations through with their SQLSTATE and name, never the SQL", async () => {
    const response = await graphql(server,
      `mutation ($v: BigInt!) { createJudgeScore(input: { judgeScore: { promptVersionId: $v, clarity: "11", specificity: "1", actionability: "1", structure: "1", contextUse: "1" } }) { judgeScore { rowId } } }`,
      { v: ids.a.versions[0] }, tokens.a);
    expect(response.errors).toEqual([expect.objectContaining({
      message: expect.stringContaining('"judge_scores_clarity_range"'),
      extensions: { code: "23514" },
    })]);
    expect(JSON.stringify(response)).not.toMatch(/insert|violates|app_public/i);
  });

  it("masks unexpected database errors, and logs them with the request id (a new one when the caller's is not sane)", async () => {
    const response = await fetch(`${server.baseUrl}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${tokens.a}`, "x-request-id": `../${"x".repeat(80)}` },
      // A NUL character is answered BAD_UNICODE now (malformed-input.test.ts); an id past bigint's range is not foreseen.
      body: JSON.stringify({ query: `{ promptByRowId(rowId: "99999999999999999999") { rowId } }` }),
    });
    const body = await response.json();
    expect(body.errors).toEqual([expect.objectContaining({
      message: expect.stringMatching(/^An error occurred \(error id [0-9a-f]{12}\)\.$/),
      extensions: { code: "INTERNAL", errorId: expect.any(String) },
    })]);
    expect(JSON.stringify(body)).not.toMatch(/out of range|bigint/);
    const requestId = response.headers.get("x-request-id");
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    const logged = await waitUntil(
      async () => server.logLines().find((line) => line.msg === "GraphQL error masked" && line.requestId === requestId),
      Boolean,
      "the masked error is logged",
    );
    expect(logged).toMatchObject({ level: "error", errorId: body.errors[0].extensions.errorId, err: { message: expect.stringContaining("out of range for type bigint") } });
  });

  it("exposes no way to write exports except requestExport", async () => {
    const response = await graphql(server, `mutation { createExport(input: { export: { kind: "all" } }) { export { rowId } } }`, {}, tokens.a);
    expect(response.errors?.[0].message).toMatch(/Cannot query field "createExport"/);
    const fields = await ok(`{ __type(name: "Export") { fields { name } } }`, {}, tokens.a);
    const names = fields.__type.fields.map((f: { name: string }) => f.name);
    expect(names).toEqual(expect.arrayContaining(["status", "rows", "bytes", "sha256", "stale", "progressRows", "requestId"]));
    expect(names).not.toContain("requestedRole");
    expect(names).not.toContain("dataVersion");
  });

  it("answers a body that is not JSON with 400, as a GraphQL response", async () => {
    const response = await fetch(`${server.baseUrl}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${tokens.a}` },
      body: '{"query": "{ currentUserId }"',
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ errors: [{ message: expect.any(String), extensions: { code: "BAD_JSON" } }] });
  });

  it("answers another method with 405 and Allow", async () => {
    const response = await fetch(`${server.baseUrl}/graphql`, { method: "DELETE" });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, POST");
    expect(await response.json()).toMatchObject({ errors: [{ message: expect.any(String) }] });
  });
});
