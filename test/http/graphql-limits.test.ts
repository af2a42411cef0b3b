// What one GraphQL operation may ask for: each limit is tried just past its
// value, and the refusal names the limit and changes nothing. Also how many
// requests one caller may have in flight. Small limits
// here, so a few rows show the default and maximum page sizes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitUntil } from "../exports/support.ts";
import { asSuperuser, createUser, useTestDatabase } from "../support/db.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
let token = "";
let userId = "";
const PROMPTS = 8;
const LIMITS = {
  GRAPHQL_DEFAULT_PAGE_SIZE: "3",
  GRAPHQL_MAX_PAGE_SIZE: "5",
  GRAPHQL_MAX_ALIASES: "3",
  GRAPHQL_MAX_DEPTH: "5",
  GRAPHQL_MAX_TOKENS: "200",
  GRAPHQL_MAX_COST: "100",
  GRAPHQL_MAX_RESPONSE_BYTES: "20000",
  CALLER_MAX_CONCURRENT: "2",
  CALLER_MAX_WAIT: "1",
  SIGN_IN_MAX_CONCURRENT: "1",
  // Only the pacing test's operations (cost 84) are costly here.
  GRAPHQL_LIGHT_COST: "60",
  GRAPHQL_COST_PER_SECOND: "1",
  // No worker runs: an export request with ?wait=true stays in flight this long.
  EXPORT_WAIT_SECONDS: "4",
};

beforeAll(async () => {
  userId = await createUser(db.pool);
  token = signTestToken(userId);
  await db.pool.query(
    "insert into app_public.prompts (user_id, text) select $1, 'Prompt ' || i from generate_series(1, $2) i",
    [userId, PROMPTS],
  );
  server = await startServer({ databaseUrl: db.url, env: LIMITS });
});
afterAll(() => server?.stop());

async function promptCount(): Promise<number> {
  const { rows } = await db.pool.query("select count(*)::int as n from app_public.prompts where user_id = $1", [userId]);
  return rows[0].n;
}

function codes(response: { errors?: { extensions?: { code?: string } }[] }) {
  return (response.errors ?? []).map((error) => error.extensions?.code);
}

describe("page sizes", () => {
  it("gives the default page size when none is asked for, with a way to the next page", async () => {
    const response = await graphql(server, "{ allPrompts(orderBy: ROW_ID_ASC) { totalCount nodes { text } pageInfo { hasNextPage } } }", {}, token);
    expect(response.errors).toBeUndefined();
    expect(response.data!.allPrompts.totalCount).toBe(PROMPTS);
    expect(response.data!.allPrompts.nodes.map((n: { text: string }) => n.text)).toEqual(["Prompt 1", "Prompt 2", "Prompt 3"]);
    expect(response.data!.allPrompts.pageInfo.hasNextPage).toBe(true);
  });

  it("pages backwards by the default size after `before`", async () => {
    const end = await graphql(server, "{ allPrompts(orderBy: ROW_ID_ASC, first: 5) { pageInfo { endCursor } } }", {}, token);
    const response = await graphql(
      server,
      "query ($c: Cursor) { allPrompts(orderBy: ROW_ID_ASC, before: $c) { nodes { text } } }",
      { c: end.data!.allPrompts.pageInfo.endCursor },
      token,
    );
    expect(response.errors).toBeUndefined();
    expect(response.data!.allPrompts.nodes.map((n: { text: string }) => n.text)).toEqual(["Prompt 2", "Prompt 3", "Prompt 4"]);
  });

  it("gives up to the maximum when asked, in a literal or a variable", async () => {
    const literal = await graphql(server, "{ allPrompts(first: 5) { nodes { text } } }", {}, token);
    expect(literal.data!.allPrompts.nodes).toHaveLength(5);
    const variable = await graphql(server, "query ($n: Int) { allPrompts(last: $n) { nodes { text } } }", { n: 5 }, token);
    expect(variable.data!.allPrompts.nodes).toHaveLength(5);
  });

  it("refuses a page size over the maximum, in a literal or a variable, naming the limit", async () => {
    const literal = await graphql(server, "{ allPrompts(first: 6) { nodes { text } } }", {}, token);
    expect(codes(literal)).toEqual(["GRAPHQL_PAGE_SIZE_TOO_LARGE"]);
    expect(literal.errors![0].message).toMatch(/maximum page size of 5.*export/);
    expect(literal.data).toBeUndefined();
    const variable = await graphql(server, "query ($n: Int) { allPrompts(last: $n) { nodes { text } } }", { n: 6 }, token);
    expect(codes(variable)).toEqual(["GRAPHQL_PAGE_SIZE_TOO_LARGE"]);
    expect(variable.data?.allPrompts ?? null).toBeNull();
  });

  it("applies to nested connections too", async () => {
    const nested = await graphql(server, "{ allUsers { nodes { promptsByUserId(first: 6) { totalCount } } } }", {}, token);
    expect(codes(nested)).toEqual(["GRAPHQL_PAGE_SIZE_TOO_LARGE"]);
    const defaulted = await graphql(server, "{ allUsers(first: 1) { nodes { promptsByUserId { nodes { rowId } } } } }", {}, token);
    expect(defaulted.errors).toBeUndefined();
    expect(defaulted.data!.allUsers.nodes[0].promptsByUserId.nodes).toHaveLength(3);
  });
});

describe("operation limits", () => {
  it("refuses more aliases than allowed before running anything (no prompt is created)", async () => {
    const before = await promptCount();
    const create = (alias: string) => `${alias}: createPrompt(input: { prompt: { text: "x" } }) { clientMutationId }`;
    const response = await graphql(server, `mutation { ${["a", "b", "c", "d"].map(create).join(" ")} }`, {}, token);
    expect(codes(response)).toEqual(["GRAPHQL_TOO_MANY_ALIASES"]);
    expect(response.errors![0].message).toMatch(/Aliases limit of 3 exceeded, found 4/);
    expect(response.data).toBeUndefined();
    expect(await promptCount()).toBe(before);
  });

  it("allows as many aliases as the limit", async () => {
    const response = await graphql(server, "{ a: allPrompts { totalCount } b: allPrompts { totalCount } c: allPrompts { totalCount } }", {}, token);
    expect(response.errors).toBeUndefined();
  });

  it("refuses a query deeper than allowed", async () => {
    const response = await graphql(server, "{ allPrompts { nodes { userByUserId { promptsByUserId { nodes { rowId } } } } } }", {}, token);
    expect(codes(response)).toContain("GRAPHQL_TOO_DEEP");
  });

  it("refuses a document of more tokens than allowed", async () => {
    const fields = Array.from({ length: 250 }, () => "__typename").join(" ");
    const response = await graphql(server, `{ ${fields} }`, {}, token);
    expect(codes(response)).toContain("GRAPHQL_TOO_MANY_TOKENS");
  });

  it("refuses a query whose estimated cost is over the limit", async () => {
    const response = await graphql(server, "{ a: allPrompts(first: 5) { nodes { rowId text createdAt userId } } b: allPrompts(first: 5) { nodes { rowId text createdAt userId } } }", {}, token);
    expect(codes(response)).toEqual(["GRAPHQL_TOO_COSTLY"]);
  });

  it("counts page sizes given in variables, and the default page size, in the estimated cost", async () => {
    const query = "query ($n: Int) { a: allPrompts(first: $n) { nodes { rowId text createdAt userId } } b: allPrompts(first: $n) { nodes { rowId text createdAt userId } } }";
    expect(codes(await graphql(server, query, { n: 5 }, token))).toEqual(["GRAPHQL_TOO_COSTLY"]);
    expect(codes(await graphql(server, query, { n: 1 }, token))).toEqual([]);
    const defaults = "{ a: allPrompts { nodes { rowId text createdAt userId } } b: allPrompts { nodes { rowId text createdAt userId } } c: allPrompts { nodes { rowId } } }";
    expect(codes(await graphql(server, defaults, {}, token))).toEqual(["GRAPHQL_TOO_COSTLY"]);
  });
});

describe("response size", () => {
  it("answers 413 with a coded error instead of an answer over the cap", async () => {
    // A caller of its own: the bytes its answers read are charged to its pace.
    const wide = await createUser(db.pool);
    const wideToken = signTestToken(wide);
    const big = "y".repeat(5000);
    await db.pool.query("insert into app_public.prompts (user_id, text) select $1, $2 from generate_series(1, 5)", [wide, big]);
    const response = await graphql(server, "{ allPrompts(first: 5) { nodes { text } } }", {}, wideToken);
    expect(response.status).toBe(413);
    expect(codes(response)).toEqual(["GRAPHQL_RESPONSE_TOO_LARGE"]);
    const smaller = await graphql(server, "{ allPrompts(first: 2) { nodes { text } } }", {}, wideToken);
    expect(smaller.status).toBe(200);
    expect(smaller.data!.allPrompts.nodes[0].text).toBe(big);
  });
});

describe("requests in flight per caller", () => {
  it("answers 429 to a caller over CALLER_MAX_CONCURRENT, and serves the others", async () => {
    const waiting = () => fetch(`${server.baseUrl}/api/storage/export-multi-agent?wait=true`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
    const held = [waiting(), waiting()];
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const refused = await graphql(server, "{ allPrompts { totalCount } }", {}, token);
    expect({ status: refused.status, code: refused.errors?.[0]?.extensions?.code }).toEqual({ status: 429, code: "TOO_MANY_CONCURRENT_REQUESTS" });
    const other = await graphql(server, "{ allPrompts { totalCount } }", {}, signTestToken(await createUser(db.pool)));
    expect(other.status).toBe(200);
    expect((await Promise.all(held)).map((response) => response.status)).toEqual([202, 202]);
    // Answered, they no longer count.
    expect((await graphql(server, "{ allPrompts { totalCount } }", {}, token)).status).toBe(200);
  });
});

describe("requests over the caller's limit", () => {
  it("wait their turn, and are served when one of the caller's requests is answered", async () => {
    const waiter = signTestToken(await createUser(db.pool));
    const locker = await db.pool.connect();
    let queued: Promise<{ status: number }> | undefined;
    let holding: Promise<unknown>[] = [];
    try {
      // Held here, the caller's first two requests keep its slots while they wait for prompts.
      await locker.query("begin");
      await locker.query("lock table app_public.prompts in access exclusive mode");
      holding = [0, 1].map(() => graphql(server, "{ allPrompts { totalCount } }", {}, waiter));
      await waitUntil(() => gatewayBackendsWaitingForLocks(), (n) => n >= 2, "both requests wait for prompts");
      queued = graphql(server, "{ allPrompts { totalCount } }", {}, waiter);
      await new Promise((resolve) => setTimeout(resolve, 300)); // it arrives while both slots are taken
    } finally {
      await locker.query("rollback");
      locker.release();
    }
    await Promise.all(holding);
    expect((await queued!).status).toBe(200);
  });
});

describe("costly operations per caller", () => {
  it("are paced to GRAPHQL_COST_PER_SECOND: one that would wait past CALLER_MAX_WAIT is answered GRAPHQL_COST_RATE with Retry-After, and other callers are not held up", async () => {
    const costly = "{ a: allPrompts { nodes { rowId text createdAt userId } } b: allPrompts { nodes { rowId text createdAt userId } } }";
    const pacedToken = signTestToken(await createUser(db.pool));
    expect(codes(await graphql(server, costly, {}, pacedToken))).toEqual([]);
    const response = await fetch(`${server.baseUrl}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${pacedToken}` },
      body: JSON.stringify({ query: costly }),
    });
    const body = await response.json();
    // 84 of cost saved up at 1 a second, with 16 left: 68 seconds to wait, of which CALLER_MAX_WAIT (1 s) waited.
    expect({ code: body.errors?.[0]?.extensions?.code, retryAfter: response.headers.get("retry-after"), data: body.data ?? null })
      .toEqual({ code: "GRAPHQL_COST_RATE", retryAfter: "67", data: null });
    expect(codes(await graphql(server, costly, {}, signTestToken(await createUser(db.pool))))).toEqual([]);
  });
});

describe("the bytes a caller's answers read", () => {
  it("are charged to its pace beyond their estimate: after two pages of wide prompts even a light operation waits, after the same pages of narrow ones it does not", async () => {
    const pages = async (width: number) => {
      const owner = await createUser(db.pool);
      // Four prompts of `width` bytes: about 90 of cost at GRAPHQL_MAX_RESPONSE_BYTES / GRAPHQL_MAX_COST = 200 bytes each, estimated 29.
      await db.pool.query("insert into app_public.prompts (user_id, text) select $1, repeat('w', $2) from generate_series(1, 4)", [owner, width]);
      const ownerToken = signTestToken(owner);
      const page = "{ allPrompts(first: 4) { nodes { text } } }";
      const read = [codes(await graphql(server, page, {}, ownerToken)), codes(await graphql(server, page, {}, ownerToken))];
      const light = await graphql(server, "{ allPrompts(first: 1) { nodes { rowId } } }", {}, ownerToken);
      return { read, light: codes(light) };
    };
    expect(await pages(10)).toEqual({ read: [[], []], light: [] });
    expect(await pages(4500)).toEqual({ read: [[], []], light: ["GRAPHQL_COST_RATE"] });
  });

  it("include an answer that reads nothing from PostgreSQL: introspection is charged by its size", async () => {
    const caller = signTestToken(await createUser(db.pool));
    const types = await graphql(server, "{ __schema { types { name } } }", {}, caller);
    const bytes = Buffer.byteLength(JSON.stringify(types.data));
    // Estimated 1 (an unknown field), charged bytes / 200 beyond that; the bucket holds 100 and refills 1 a second.
    const requests = Math.floor(105 / (bytes / 200 - 1)) + 1;
    expect(bytes).toBeGreaterThan(4000);
    for (let i = 1; i < requests; i++) expect(codes(await graphql(server, "{ __schema { types { name } } }", {}, caller))).toEqual([]);
    expect(codes(await graphql(server, "{ allPrompts(first: 1) { nodes { rowId } } }", {}, caller))).toEqual(["GRAPHQL_COST_RATE"]);
  });

  it("count as much as the answer repeats them: two aliases of one page, read once, are charged twice", async () => {
    const owner = await createUser(db.pool);
    // Four prompts of 2200 bytes: 8.8 kB read once (44 of cost), 17.6 kB answered (88), estimated 58.
    await db.pool.query("insert into app_public.prompts (user_id, text) select $1, repeat('w', 2200) from generate_series(1, 4)", [owner]);
    const ownerToken = signTestToken(owner);
    const twice = "{ a: allPrompts(first: 4) { nodes { text } } b: allPrompts(first: 4) { nodes { text } } }";
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(codes(await graphql(server, twice, {}, ownerToken)));
    expect(answers).toEqual([[], [], [], []]);
    expect(codes(await graphql(server, "{ allPrompts(first: 1) { nodes { rowId } } }", {}, ownerToken))).toEqual(["GRAPHQL_COST_RATE"]);
  });
});

describe("costly operations gateway-wide", () => {
  it("take turns within GRAPHQL_MAX_COST: one that waited CALLER_MAX_WAIT is answered 503 SERVER_BUSY with Retry-After, while light requests go on", async () => {
    const costly = "{ a: allPrompts { nodes { rowId text createdAt userId } } b: allPrompts { nodes { rowId text createdAt userId } } }";
    const locker = await db.pool.connect();
    let first: Promise<unknown> | undefined;
    try {
      // Held here, the first costly operation keeps its turn while it waits for prompts.
      await locker.query("begin");
      await locker.query("lock table app_public.prompts in access exclusive mode");
      first = graphql(server, costly, {}, signTestToken(await createUser(db.pool)));
      await waitUntil(() => gatewayBackendsWaitingForLocks(), (n) => n >= 1, "the first costly operation waits for prompts");
      const response = await fetch(`${server.baseUrl}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${signTestToken(await createUser(db.pool))}` },
        body: JSON.stringify({ query: costly }),
      });
      expect({ status: response.status, retryAfter: response.headers.get("retry-after"), code: (await response.json()).errors?.[0]?.extensions?.code })
        .toEqual({ status: 503, retryAfter: "1", code: "SERVER_BUSY" });
      expect(codes(await graphql(server, "{ allAgents { totalCount } }", {}, signTestToken(await createUser(db.pool))))).toEqual([]);
    } finally {
      await locker.query("rollback");
      locker.release();
    }
    await first;
  });
});

describe("clients that go away", () => {
  it("give their caller's slots back when they leave mid-request", async () => {
    const locker = await db.pool.connect();
    try {
      // The session check reads users: held here, the requests wait in it, holding their slots.
      await locker.query("begin");
      await locker.query("lock table app_public.users in access exclusive mode");
      const leaving = Array.from({ length: 2 }, () => {
        const controller = new AbortController();
        const sent = fetch(`${server.baseUrl}/api/agents/effectiveness`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal }).catch(() => undefined);
        return { controller, sent };
      });
      await waitUntil(() => gatewayBackendsWaitingForLocks(), (n) => n >= 2, "both requests wait for users");
      for (const { controller } of leaving) controller.abort();
      await Promise.all(leaving.map(({ sent }) => sent));
      await locker.query("commit");
    } finally {
      locker.release();
    }
    await waitUntil(() => gatewayBackendsWaitingForLocks(), (n) => n === 0, "the session checks are done");
    const answers = await Promise.all(Array.from({ length: 2 }, () =>
      fetch(`${server.baseUrl}/api/agents/effectiveness`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status)));
    expect(answers).toEqual([200, 200]);
  });
});

describe("sign-ins take turns gateway-wide", () => {
  it("answers 503 SERVER_BUSY with Retry-After to a sign-in that waited too long, and serves other callers meanwhile", async () => {
    const username = `turns_${Date.now()}`;
    const signIn = (name: string) => fetch(`${server.baseUrl}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: `mutation { authenticate(input: {username: "${name}", password: "not the password"}) { result } }` }),
    });
    const locker = await db.pool.connect();
    let first: Promise<Response> | undefined;
    try {
      // A sign-in holds its username's throttle row while it checks the password: held here, the first one stays in its turn.
      await locker.query("begin");
      await locker.query("insert into app_private.sign_in_failures (key, failures, last_failed_at, blocked_until) values ($1, 0, now(), '-infinity')", [`user:${username}`]);
      first = signIn(username);
      await waitUntil(() => gatewayBackendsWaitingForLocks(), (n) => n >= 1, "the first sign-in waits for its username's row");
      const second = await signIn(`${username}_other`);
      expect({ status: second.status, retryAfter: second.headers.get("retry-after"), code: (await second.json()).errors?.[0]?.extensions?.code })
        .toEqual({ status: 503, retryAfter: "1", code: "SERVER_BUSY" });
      expect((await graphql(server, "{ allPrompts { totalCount } }", {}, token)).status).toBe(200);
    } finally {
      await locker.query("rollback");
      locker.release();
    }
    await (await first!).text(); // answered once its turn came (a wrong password, or the lock timeout)
  });
});

function gatewayBackendsWaitingForLocks(): Promise<number> {
  return asSuperuser(async (client) => (await client.query(
    "select from pg_stat_activity where datname = $1 and application_name like 'prompter-gateway%' and wait_event_type = 'Lock'", [db.name])).rowCount ?? 0);
}

describe("sign-ins per client address", () => {
  it("are paced to SIGN_INS_PER_SECOND: one that would wait past CALLER_MAX_WAIT is answered GRAPHQL_COST_RATE", async () => {
    const paced = await startServer({ databaseUrl: db.url, env: { SIGN_INS_PER_SECOND: "1", CALLER_MAX_WAIT: "1" } });
    try {
      const signIn = (name: string) => graphql(paced, `mutation { authenticate(input: {username: "${name}", password: "not the password"}) { result } }`);
      // The first goes at once, the second waits its second, the third would wait two: past CALLER_MAX_WAIT.
      const answers = await Promise.all(["pace_a", "pace_b", "pace_c"].map((name) => signIn(`${name}_${Date.now()}`)));
      expect(answers.map((answer) => codes(answer)[0]).sort()).toEqual(["GRAPHQL_COST_RATE", "PRCRD", "PRCRD"]);
    } finally {
      await paced.stop();
    }
  });
});
