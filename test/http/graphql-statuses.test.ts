// What GraphQL clients read of a refusal besides its body: the status REST
// would answer, the Bearer challenge of a 401, and a media type that tells them
// the body is a GraphQL response (Apollo Client reads a non-2xx body only as
// application/graphql-response+json).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ databaseUrl: db.url, env: { LOCK_TIMEOUT: "1s" } });
});
afterAll(() => server?.stop());

/** Apollo Client 4's Accept. */
const APOLLO_ACCEPT = "application/graphql-response+json,application/json;q=0.9";

async function post(query: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${server.baseUrl}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ query }),
  });
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    challenge: response.headers.get("www-authenticate"),
    retryAfter: response.headers.get("retry-after"),
    body: await response.json(),
  };
}

const INVALID_TOKEN_CHALLENGE = expect.stringMatching(/^Bearer realm="prompter", error="invalid_token", error_description="[^"]+"$/);

describe("a token whose session has ended (PRSES)", () => {
  it("gets 401 with error=\"invalid_token\" in its Bearer challenge, on REST and on GraphQL", async () => {
    const user = await createUser(db.pool);
    const token = signTestToken(user);
    await db.pool.query("select app_private.revoke_tokens($1)", [user]);
    const rest = await fetch(`${server.baseUrl}/api/exports`, { headers: { authorization: `Bearer ${token}` } });
    expect({ status: rest.status, challenge: rest.headers.get("www-authenticate"), code: (await rest.json()).error.code })
      .toEqual({ status: 401, challenge: INVALID_TOKEN_CHALLENGE, code: "PRSES" });
    const graphql = await post("{ currentUserId }", { authorization: `Bearer ${token}`, accept: APOLLO_ACCEPT });
    expect(graphql).toMatchObject({ status: 401, challenge: INVALID_TOKEN_CHALLENGE, body: { errors: [{ extensions: { code: "PRSES" } }] } });
    expect(graphql.contentType).toMatch(/^application\/graphql-response\+json/);
  });
});

describe("the gateway's own refusals on /graphql", () => {
  const expired = () => signTestToken(1, { expiresInSeconds: -60 });
  it.each([
    ["a forged token", () => "not.a.token", "INVALID_TOKEN"],
    ["an expired token", expired, "TOKEN_EXPIRED"],
  ])("%s: a GraphQL response of the media type the client prefers", async (_name, token, code) => {
    const apollo = await post("{ currentUserId }", { authorization: `Bearer ${token()}`, accept: APOLLO_ACCEPT });
    expect(apollo).toMatchObject({ status: 401, challenge: INVALID_TOKEN_CHALLENGE, body: { errors: [{ extensions: { code } }] } });
    expect(apollo.contentType).toMatch(/^application\/graphql-response\+json/);
    // A legacy client, or one that takes anything, gets application/json (GraphQL over HTTP, legacy watershed).
    for (const accept of ["application/json", "*/*"]) {
      const legacy = await post("{ currentUserId }", { authorization: `Bearer ${token()}`, accept });
      expect({ status: legacy.status, contentType: legacy.contentType, code: legacy.body.errors[0].extensions.code })
        .toEqual({ status: 401, contentType: expect.stringMatching(/^application\/json/), code });
    }
  });
});

describe("a whole operation refused for a reason REST answers with its own status", () => {
  it("LOCK_TIMEOUT: 503 with Retry-After, as REST", async () => {
    const token = signTestToken(await createUser(db.pool));
    const holder = await db.pool.connect();
    try {
      await holder.query("begin");
      await holder.query("lock table app_public.judge_scores in access exclusive mode");
      const refused = await post("{ allJudgeScores { totalCount } }", { authorization: `Bearer ${token}`, accept: APOLLO_ACCEPT });
      expect(refused).toMatchObject({ status: 503, retryAfter: "1", body: { data: { allJudgeScores: null }, errors: [{ extensions: { code: "LOCK_TIMEOUT" } }] } });
      // Part of the operation answered: the answer is 200, its errors say what failed.
      const partly = await post("{ currentUserId allJudgeScores { totalCount } }", { authorization: `Bearer ${token}`, accept: APOLLO_ACCEPT });
      expect(partly.body.errors?.[0]?.extensions?.code).toBe("LOCK_TIMEOUT");
      expect(partly.body.data).not.toBeNull();
      expect(partly.status).toBe(200);
    } finally {
      await holder.query("rollback");
      holder.release();
    }
  });

  it("PRTHR: 429 with Retry-After, as REST", async () => {
    const signIn = () => post(`mutation { authenticate(input: { username: "nobody_throttled", password: "wrong-password" }) { result } }`);
    for (let i = 0; i < 5; i++) expect((await signIn()).body.errors[0].extensions.code).toBe("PRCRD");
    const throttled = await signIn();
    expect(throttled).toMatchObject({ status: 429, retryAfter: expect.stringMatching(/^\d+$/), body: { data: { authenticate: null }, errors: [{ extensions: { code: "PRTHR" } }] } });
  });
});
