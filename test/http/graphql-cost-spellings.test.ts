// The estimated cost of one query is the same however it is spelled: named,
// inline and nested fragments, variables given or left to their defaults,
// fields selected twice under one response key, @include. Each spelling is
// sent to a server whose GRAPHQL_MAX_COST is below them all, and the cost its
// refusal names is compared with the plain query's. Aggregates over text
// columns are charged as a full page of that column.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
let token = "";
const MAX_COST = 100;
const MAX_PAGE_SIZE = 50;

beforeAll(async () => {
  token = signTestToken(await createUser(db.pool));
  server = await startServer({
    databaseUrl: db.url,
    env: { GRAPHQL_MAX_COST: String(MAX_COST), GRAPHQL_LIGHT_COST: String(MAX_COST), GRAPHQL_MAX_PAGE_SIZE: String(MAX_PAGE_SIZE), GRAPHQL_DEFAULT_PAGE_SIZE: "10" },
  });
});
afterAll(() => server?.stop());

/** The cost a refusal names, or "accepted". */
async function costOf(query: string, variables: Record<string, unknown> = {}): Promise<number | "accepted"> {
  const response = await graphql(server, query, variables, token);
  const error = response.errors?.[0];
  if (!error) return "accepted";
  expect(error.extensions?.code, error.message).toBe("GRAPHQL_TOO_COSTLY");
  return Number(/found (\d+)/.exec(error.message)![1]);
}

// Two pages of 40 prompts, one with its versions' page of the default size (10).
const PLAIN = `{
  a: allPrompts(first: 40) { nodes { rowId text } }
  b: allPrompts(first: 40) { totalCount nodes { promptVersionsByUserIdAndPromptId { nodes { text } } } }
}`;
// Its cost by GraphQL Armor's weights, worked out by hand: a node of `a` is 2 + 1.5 * 2 (two scalars),
// `a` is 2 + 1.5 * (2 + 1.5 * 2 * ...) per row; see each line.
const nodeA = 2 + 1.5 * 2; // nodes { rowId text }, one row
const costA = (2 + 1.5 * nodeA) * 40;
const versions = (2 + 1.5 * (2 + 1.5 * 1)) * 10; // promptVersionsByUserIdAndPromptId { nodes { text } }, ten rows
const nodeB = 2 + 1.5 * versions;
const costB = (2 + 1.5 * (1 + nodeB)) * 40;
const PLAIN_COST = Math.ceil(costA + costB);

const SPELLINGS: Record<string, { query: string; variables?: Record<string, unknown> }> = {
  "named fragments": {
    query: `query { ...Pages }
      fragment Pages on Query { a: allPrompts(first: 40) { ...PromptNodes } b: allPrompts(first: 40) { totalCount ...WithVersions } }
      fragment PromptNodes on PromptConnection { nodes { rowId text } }
      fragment WithVersions on PromptConnection { nodes { promptVersionsByUserIdAndPromptId { nodes { text } } } }`,
  },
  "inline fragments": {
    query: `{ ... on Query { a: allPrompts(first: 40) { ... { nodes { ... on Prompt { rowId text } } } } }
      b: allPrompts(first: 40) { ... on PromptConnection { totalCount nodes { promptVersionsByUserIdAndPromptId { nodes { ... { text } } } } } } }`,
  },
  "nested fragments, one spread twice": {
    query: `{ ...A ...A b: allPrompts(first: 40) { totalCount nodes { ...Versions } } }
      fragment A on Query { a: allPrompts(first: 40) { nodes { ...Columns } } }
      fragment Columns on Prompt { rowId ...Text }
      fragment Text on Prompt { text }
      fragment Versions on Prompt { promptVersionsByUserIdAndPromptId { ...VersionNodes } }
      fragment VersionNodes on PromptVersionConnection { nodes { text } }`,
  },
  "variables left to their defaults": {
    query: `query ($n: Int = 40, $m: Int = 10) {
      a: allPrompts(first: $n) { nodes { rowId text } }
      b: allPrompts(first: $n) { totalCount nodes { promptVersionsByUserIdAndPromptId(first: $m) { nodes { text } } } } }`,
  },
  "variables given": {
    query: `query ($n: Int, $m: Int) {
      a: allPrompts(first: $n) { nodes { rowId text } }
      b: allPrompts(first: $n) { totalCount nodes { promptVersionsByUserIdAndPromptId(first: $m) { nodes { text } } } } }`,
    variables: { n: 40, m: 10 },
  },
  "one response key selected twice": {
    query: `{
      a: allPrompts(first: 40) { nodes { rowId } } a: allPrompts(first: 40) { nodes { text } }
      b: allPrompts(first: 40) { totalCount } b: allPrompts(first: 40) { nodes { promptVersionsByUserIdAndPromptId { nodes { text } } } } }`,
  },
  "fields kept and dropped by @include and @skip": {
    query: `query ($yes: Boolean = true) {
      a: allPrompts(first: 40) { nodes { rowId text @include(if: $yes) createdAt @skip(if: $yes) } }
      b: allPrompts(first: 40) @include(if: true) { totalCount nodes { promptVersionsByUserIdAndPromptId { nodes { text } } } }
      c: allPrompts(first: 40) @skip(if: true) { nodes { rowId } } }`,
  },
  "pages counted from the end": {
    query: `{
      a: allPrompts(last: 40) { nodes { rowId text } }
      b: allPrompts(first: 40) { totalCount nodes { promptVersionsByUserIdAndPromptId(last: 10) { nodes { text } } } } }`,
  },
};

describe("the estimated cost of one query", () => {
  it("is GraphQL Armor's formula with the page sizes that apply", async () => {
    expect(await costOf(PLAIN)).toBe(PLAIN_COST);
  });

  for (const [spelling, { query, variables }] of Object.entries(SPELLINGS)) {
    it(`is the same with ${spelling}`, async () => {
      expect(await costOf(query, variables)).toBe(PLAIN_COST);
    });
  }

  it("refuses a page size left to a variable's default like the same size given", async () => {
    const query = "query ($n: Int = 50) { a: allPrompts(first: $n) { nodes { text } } b: allPrompts(first: $n) { nodes { text } } }";
    const given = await costOf(query, { n: 50 });
    expect(given).toBeGreaterThan(MAX_COST);
    expect(await costOf(query)).toBe(given);
    // An explicit null is no page size: the default one applies.
    expect(await costOf(query, { n: null })).toBe(Math.ceil(2 * (2 + 1.5 * (2 + 1.5 * 1)) * 10));
  });
});

describe("variables that do not coerce", () => {
  it("are refused by GraphQL before anything runs (the estimate, which cannot read them, counts nothing)", async () => {
    const query = "query ($n: Int!) { a: allPrompts(first: $n) { nodes { text } } b: allPrompts(first: $n) { nodes { text } } }";
    for (const variables of [{}, { n: "fifty" }, { n: null }]) {
      const response = await graphql(server, query, variables, token);
      expect({ data: response.data ?? null, errors: response.errors?.length }).toEqual({ data: null, errors: 1 });
      expect(response.errors![0].message).toMatch(/Variable "\$n"/);
    }
  });
});

describe("a field of an interface type", () => {
  // node(id:) may be a Prompt or a User: the User's page of 40 prompts is the costlier.
  const NODE_COST = Math.ceil(2 + 1.5 * (1 + (2 + 1.5 * (2 + 1.5 * 2)) * 40));

  it("costs what its costliest possible type selects", async () => {
    const query = `{ node(id: "x") { id ... on Prompt { text } ... on User { promptsByUserId(first: 40) { nodes { rowId text } } } } }`;
    expect(await costOf(query)).toBe(NODE_COST);
  });

  it("costs the same when each type's selection is a named fragment: a fragment on another type adds nothing", async () => {
    const query = `{ node(id: "x") { id ...PromptText ...UserPage } }
      fragment PromptText on Prompt { text }
      fragment UserPage on User { promptsByUserId(first: 40) { nodes { rowId text } } }`;
    expect(await costOf(query)).toBe(NODE_COST);
  });
});

describe("aggregates", () => {
  it("over a text column cost a full page of it; over a number, one scalar", async () => {
    const numeric = "{ allPromptVersions(first: 1) { aggregates { distinctCount { rowId } } } }";
    expect(await costOf(numeric)).toBe("accepted");
    const text = "{ allPromptVersions(first: 1) { aggregates { distinctCount { text } } } }";
    // allPromptVersions > aggregates > distinctCount > text, charged MAX_PAGE_SIZE scalars.
    expect(await costOf(text)).toBe(Math.ceil(2 + 1.5 * (2 + 1.5 * (2 + 1.5 * MAX_PAGE_SIZE))));
  });
});
