// What one GraphQL request may hold of the gateway: one database connection,
// however many root fields it has; rows up to GRAPHQL_MAX_RESPONSE_BYTES,
// refused as they arrive rather than once held; and, anonymous in
// production, no introspection. Aggregates over text are costly.
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitUntil } from "../exports/support.ts";
import { asSuperuser, createUser, useTestDatabase } from "../support/db.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
let token = "";
const RESPONSE_CAP = 1_000_000;
const WIDE_ROWS = 200;
const WIDE_BYTES = 95_000;

beforeAll(async () => {
  const userId = await createUser(db.pool);
  token = signTestToken(userId);
  const prompt = (await db.pool.query("insert into app_public.prompts (user_id, text) values ($1, 'a prompt') returning id", [userId])).rows[0].id;
  // Stored compressed, each is 95 kB on the wire.
  await db.pool.query(
    "insert into app_public.prompt_versions (prompt_id, user_id, text, source) select $1, $2, repeat('x', $3) || i, 'syntax' from generate_series(1, $4) i",
    [prompt, userId, WIDE_BYTES, WIDE_ROWS],
  );
  server = await startServer({
    databaseUrl: db.url,
    // Only the limits under test apply: cost, aliases and pacing let everything here through.
    env: {
      GRAPHQL_MAX_RESPONSE_BYTES: String(RESPONSE_CAP),
      GRAPHQL_MAX_COST: "10000000",
      GRAPHQL_LIGHT_COST: "10000000",
      GRAPHQL_COST_PER_SECOND: "100000000",
      PG_POOL_MAX: "10",
    },
  });
});
afterAll(() => server?.stop());

function gatewayBackends(condition: string): Promise<number> {
  return asSuperuser(async (client) => (await client.query(
    `select from pg_stat_activity where datname = $1 and application_name like 'prompter-gateway%' and ${condition}`, [db.name])).rowCount ?? 0);
}

describe("database connections", () => {
  it("one request holds one, however many root fields it has", async () => {
    const aliases = Array.from({ length: 15 }, (_, i) =>
      `a${i}: allPromptVersions(first: 1, filter: { rowId: { greaterThan: "${i}" } }) { totalCount }`).join(" ");
    const locker = await db.pool.connect();
    let answer: ReturnType<typeof graphql> | undefined;
    try {
      // Held here, the request's transactions stay open while they wait for prompt_versions.
      await locker.query("begin");
      await locker.query("lock table app_public.prompt_versions in access exclusive mode");
      answer = graphql(server, `{ ${aliases} }`, {}, token);
      await waitUntil(() => gatewayBackends("wait_event_type = 'Lock'"), (n) => n >= 1, "the request waits for prompt_versions");
      await new Promise((resolve) => setTimeout(resolve, 500)); // time for any other root field to take a connection
      expect(await gatewayBackends("state <> 'idle'")).toBe(1);
    } finally {
      await locker.query("rollback");
      locker.release();
    }
    const { status, data, errors } = await answer!;
    expect({ status, errors }).toEqual({ status: 200, errors: undefined });
    expect(Object.values(data!).map((field) => (field as { totalCount: number }).totalCount))
      .toEqual(Array.from({ length: 15 }, (_, i) => Math.max(0, WIDE_ROWS - i)));
  });
});

/** The gateway process's peak resident memory (kB) so far. */
async function peakMemoryKb(): Promise<number> {
  const status = await readFile(`/proc/${server.child.pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]);
}

describe("an answer's bytes", () => {
  it("are counted as rows arrive: past GRAPHQL_MAX_RESPONSE_BYTES the answer is 413 GRAPHQL_RESPONSE_TOO_LARGE before the gateway holds it", async () => {
    const before = await peakMemoryKb();
    // 10 pages of 200 versions of 95 kB: 190 MB if it were read.
    const pages = Array.from({ length: 10 }, (_, i) => `p${i}: allPromptVersions(first: ${WIDE_ROWS}) { nodes { text } }`).join(" ");
    const response = await graphql(server, `{ ${pages} }`, {}, token);
    expect(response.status).toBe(413);
    expect(new Set(response.errors!.map((error) => error.extensions?.code))).toEqual(new Set(["GRAPHQL_RESPONSE_TOO_LARGE"]));
    const grownMb = (await peakMemoryKb() - before) / 1024;
    expect(grownMb).toBeLessThan(64);
    // The connection closed on purpose is no database failure for the operator.
    expect(server.logLines().filter((line) => line.level === "warn").map((line) => line.msg)).toEqual([]);
  });

  it("are counted as they arrive within a row too: a nested page comes in one", async () => {
    const before = await peakMemoryKb();
    // Aliased 10 times, the prompt's page of 200 versions would be 190 MB.
    const pages = Array.from({ length: 10 }, (_, i) =>
      `p${i}: allPrompts(first: 1) { nodes { promptVersionsByUserIdAndPromptId(first: ${WIDE_ROWS}) { nodes { text } } } }`).join(" ");
    const response = await graphql(server, `{ ${pages} }`, {}, token);
    expect(response.status).toBe(413);
    expect(new Set(response.errors!.map((error) => error.extensions?.code))).toEqual(new Set(["GRAPHQL_RESPONSE_TOO_LARGE"]));
    expect((await peakMemoryKb() - before) / 1024).toBeLessThan(64);
  });

  it("are counted as the answer repeats them: aliases of one page, read once, are refused before the answer is written", async () => {
    // At the default cap, 15 aliases of one page of 200 versions: 19 MB read once, 285 MB if written.
    const wide = await startServer({ databaseUrl: db.url, env: { GRAPHQL_MAX_COST: "10000000", GRAPHQL_LIGHT_COST: "10000000" } });
    try {
      const status = await readFile(`/proc/${wide.child.pid}/status`, "utf8");
      const before = Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]);
      const pages = Array.from({ length: 15 }, (_, i) => `p${i}: allPromptVersions(first: ${WIDE_ROWS}) { nodes { text } }`).join(" ");
      const response = await graphql(wide, `{ ${pages} }`, {}, token);
      expect({ status: response.status, codes: response.errors?.map((error) => error.extensions?.code), data: response.data ?? null })
        .toEqual({ status: 413, codes: ["GRAPHQL_RESPONSE_TOO_LARGE"], data: null });
      const after = Number(/VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${wide.child.pid}/status`, "utf8"))![1]);
      expect((after - before) / 1024).toBeLessThan(64);
      // Refused before it was written out: measured only as far as the cap.
      expect(response.errors![0].message).toMatch(/^The answer would be more than 20000000 bytes; ask for fewer rows or fields/);
    } finally {
      await wide.stop();
    }
  });

  it("are measured as JSON writes them, escapes included, before the answer is written", async () => {
    const writer = await createUser(db.pool);
    const prompt = (await db.pool.query("insert into app_public.prompts (user_id, text) values ($1, 'a prompt') returning id", [writer])).rows[0].id;
    // 300 kB of quotes and 100 kB of U+0001 travel as 400 kB and are written as 600 kB each (\" and \u0001).
    await db.pool.query(
      "insert into app_public.prompt_versions (prompt_id, user_id, text, source) values ($1, $2, repeat('\"', 300000), 'syntax'), ($1, $2, repeat(chr(1), 100000), 'syntax')",
      [prompt, writer],
    );
    const writerToken = signTestToken(writer);
    const both = await graphql(server, "{ allPromptVersions(first: 2) { nodes { text } } }", {}, writerToken);
    expect({ status: both.status, message: both.errors?.[0]?.message }).toEqual({
      status: 413,
      message: `The answer would be more than ${RESPONSE_CAP} bytes; ask for fewer rows or fields, or request an export.`,
    });
    for (const [order, text, length] of [["ROW_ID_ASC", "\"", 300_000], ["ROW_ID_DESC", "\u0001", 100_000]] as const) {
      const one = await graphql(server, `{ allPromptVersions(first: 1, orderBy: ${order}) { nodes { text } } }`, {}, writerToken);
      expect(one.status).toBe(200);
      expect(one.data!.allPromptVersions.nodes.map((node: { text: string }) => node.text)).toEqual([text.repeat(length)]);
    }
  });

  it("within the cap, are answered in full", async () => {
    const rows = Math.floor(RESPONSE_CAP / (WIDE_BYTES + 200)) - 1;
    const response = await graphql(server, `{ allPromptVersions(first: ${rows}, orderBy: ROW_ID_ASC) { nodes { text } } }`, {}, token);
    expect(response.status).toBe(200);
    const texts = response.data!.allPromptVersions.nodes.map((node: { text: string }) => node.text);
    expect(texts).toEqual(Array.from({ length: rows }, (_, i) => "x".repeat(WIDE_BYTES) + (i + 1)));
  });
});

describe("a server in production, at the default limits", () => {
  let production: RunningServer;
  beforeAll(async () => {
    production = await startServer({ databaseUrl: db.url, env: { NODE_ENV: "production" } });
  });
  afterAll(() => production?.stop());

  it("refuses the whole schema to anonymous callers, in any spelling, with 403 GRAPHQL_INTROSPECTION_FORBIDDEN", async () => {
    for (const query of [
      "{ __schema { types { name } } }",
      "{ t: __type(name: \"Prompt\") { name } __schema { queryType { name } } }",
      "query { ...Schema } fragment Schema on Query { ... on Query { __schema { queryType { name } } } }",
    ]) {
      const response = await graphql(production, query);
      expect({ status: response.status, codes: response.errors?.map((error) => error.extensions?.code), data: response.data ?? null })
        .toEqual({ status: 403, codes: ["GRAPHQL_INTROSPECTION_FORBIDDEN"], data: null });
    }
  });

  it("serves introspection to signed-in callers, and __typename and __type to anyone", async () => {
    const signedIn = await graphql(production, "{ __schema { queryType { name } } }", {}, token);
    expect(signedIn).toMatchObject({ status: 200, data: { __schema: { queryType: { name: "Query" } } } });
    expect(await graphql(production, "{ __typename }")).toMatchObject({ status: 200, data: { __typename: "Query" } });
    // One type at a time, as the GraphQL-over-HTTP audit asks, anonymous callers may.
    expect(await graphql(production, "{ __type(name: \"Prompt\") { name } }")).toMatchObject({ status: 200, data: { __type: { name: "Prompt" } } });
  });

  it("refuses 15 aliases of an aggregate over text as too costly", async () => {
    const aliases = Array.from({ length: 15 }, (_, i) =>
      `a${i}: allPromptVersions(first: 1, filter: { rowId: { greaterThan: "${i}" } }) { aggregates { distinctCount { text explanation } } }`).join(" ");
    const response = await graphql(production, `{ ${aliases} }`, {}, token);
    // Each: 2 + 1.5 * (aggregates: 2 + 1.5 * (distinctCount: 2 + 1.5 * (2 text columns of GRAPHQL_MAX_PAGE_SIZE = 1000)))
    const each = 2 + 1.5 * (2 + 1.5 * (2 + 1.5 * 2 * 1000));
    expect(response.errors?.map((error) => [error.extensions?.code, error.message]))
      .toEqual([["GRAPHQL_TOO_COSTLY", `Query Cost limit of 50000 exceeded, found ${Math.ceil(15 * each)}.`]]);
  });
});

describe("a development server", () => {
  it("lets anonymous callers introspect outside production", async () => {
    expect(await graphql(server, "{ __schema { queryType { name } } }")).toMatchObject({ status: 200, data: { __schema: { queryType: { name: "Query" } } } });
  });
});
