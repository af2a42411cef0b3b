// The attacks of issue 12 against a running gateway: a token keeps only the
// rights the database gives its user now; revoked, disabled and deleted
// sessions end at once; sign-in is throttled and cannot be batched; external
// tokens need the right issuer, a bounded lifetime and an existing user.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import jwt from "jsonwebtoken";
import { createUser, useTestDatabase } from "../support/db.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
const IDP_ISSUER = "https://idp.example.test/";
const identityProvider = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  publicKeyEncoding: { type: "spki", format: "pem" },
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
});

beforeAll(async () => {
  server = await startServer({
    databaseUrl: db.url,
    env: { JWT_PUBLIC_KEY: identityProvider.publicKey, JWT_ISSUER: IDP_ISSUER, JWT_MAX_LIFETIME: "1d", ALLOW_REGISTRATION: "true" },
  });
});
afterAll(() => server?.stop());

const usersSeen = async (token: string) => (await graphql(server, "{ allUsers { totalCount } }", {}, token));
const createAgent = (token: string, name: string) =>
  graphql(server, `mutation ($n: String!) { createAgent(input: { agent: { name: $n } }) { agent { name } } }`, { n: name }, token);

async function restStatus(token: string) {
  const response = await fetch(`${server.baseUrl}/api/exports`, { headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, code: ((await response.json()) as { error?: { code: string } }).error?.code };
}

/** Both APIs refuse the token with 401 PRSES. */
async function expectSessionEnded(token: string) {
  expect(await restStatus(token)).toEqual({ status: 401, code: "PRSES" });
  const response = await graphql(server, "{ currentUserId }", {}, token);
  expect({ status: response.status, code: response.errors?.[0]?.extensions?.code }).toEqual({ status: 401, code: "PRSES" });
}

describe("admin rights come from the database, not the token", () => {
  it("a demoted admin's old token reads only their own data and cannot manage agents", async () => {
    const admin = await createUser(db.pool, { admin: true });
    await createUser(db.pool);
    const token = signTestToken(admin, { admin: true });
    expect((await usersSeen(token)).data!.allUsers.totalCount).toBeGreaterThan(1);
    await db.pool.query("update app_public.users set is_admin = false where id = $1", [admin]);
    expect((await usersSeen(token)).data).toEqual({ allUsers: { totalCount: 1 } });
    expect((await createAgent(token, "demoted_agent")).errors?.[0].extensions?.code).toBe("42501");
  });

  it("a plain user's token claiming app_admin is a plain user; a promoted user is an admin at once", async () => {
    const user = await createUser(db.pool);
    const forged = signTestToken(user, { admin: true });
    expect((await usersSeen(forged)).data).toEqual({ allUsers: { totalCount: 1 } });
    await db.pool.query("update app_public.users set is_admin = true where id = $1", [user]);
    const plainClaim = signTestToken(user);
    expect((await createAgent(plainClaim, "promoted_agent")).data).toEqual({ createAgent: { agent: { name: "promoted_agent" } } });
  });

  it("a disabled admin's token is refused, and works again once enabled", async () => {
    const admin = await createUser(db.pool, { admin: true });
    const token = signTestToken(admin, { admin: true });
    await db.pool.query("update app_public.users set is_disabled = true where id = $1", [admin]);
    await expectSessionEnded(token);
    await db.pool.query("update app_public.users set is_disabled = false where id = $1", [admin]);
    expect((await restStatus(token)).status).toBe(200);
  });

  it("a deleted admin's token is refused", async () => {
    const admin = await createUser(db.pool, { admin: true });
    const token = signTestToken(admin, { admin: true });
    await db.pool.query("delete from app_public.users where id = $1", [admin]);
    await expectSessionEnded(token);
  });
});

const register = (username: string, password: string) =>
  graphql(server, "mutation ($u: String!, $p: String!) { register(input: { username: $u, password: $p }) { result } }", { u: username, p: password });
const signIn = (username: string, password: string) =>
  graphql(server, "mutation ($u: String!, $p: String!) { authenticate(input: { username: $u, password: $p }) { result } }", { u: username, p: password });

describe("revocation", () => {
  it("changing the password ends every earlier token; the new token works", async () => {
    const first = (await register("rita", "first-password")).data!.register.result as string;
    const second = (await signIn("rita", "first-password")).data!.authenticate.result as string;
    const wrong = await graphql(server, `mutation { changePassword(input: { oldPassword: "not-it-at-all", newPassword: "second-password" }) { result } }`, {}, first);
    expect(wrong.errors?.[0].extensions?.code).toBe("PRCRD");
    expect((await restStatus(first)).status).toBe(200);

    const changed = await graphql(server, `mutation { changePassword(input: { oldPassword: "first-password", newPassword: "second-password" }) { result } }`, {}, first);
    const fresh = changed.data!.changePassword.result as string;
    await expectSessionEnded(first);
    await expectSessionEnded(second);
    expect((await restStatus(fresh)).status).toBe(200);
    expect((await signIn("rita", "first-password")).errors?.[0].extensions?.code).toBe("PRCRD");
    expect((await signIn("rita", "second-password")).data!.authenticate.result).toEqual(expect.any(String));
  });

  it("signOutEverywhere ends every token, the one that asked included", async () => {
    const first = (await register("sam", "sams-password")).data!.register.result as string;
    const second = (await signIn("sam", "sams-password")).data!.authenticate.result as string;
    expect(await graphql(server, "mutation { signOutEverywhere(input: {}) { clientMutationId } }", {}, second))
      .toEqual({ status: 200, data: { signOutEverywhere: { clientMutationId: null } } });
    await expectSessionEnded(first);
    await expectSessionEnded(second);
    expect((await signIn("sam", "sams-password")).data!.authenticate.result).toEqual(expect.any(String));
  });
});

describe("the session is checked in each transaction, not once per request", () => {
  it("a mutation after signOutEverywhere in the same operation is refused, and writes nothing", async () => {
    const token = (await register("uma", "umas-password")).data!.register.result as string;
    const response = await graphql(server, `mutation {
      signOutEverywhere(input: {}) { clientMutationId }
      createPrompt(input: { prompt: { text: "written after signing out" } }) { prompt { rowId } }
    }`, {}, token);
    // Mutations run one after the other, each in a transaction of its own that starts with the check.
    expect(response.status).toBe(401);
    expect(response.data).toEqual({ signOutEverywhere: { clientMutationId: null }, createPrompt: null });
    expect(response.errors?.map((error) => [error.path, error.extensions?.code])).toEqual([[["createPrompt"], "PRSES"]]);
    const { rows } = await db.pool.query(
      "select count(*)::int as prompts from app_public.prompts p join app_public.users u on u.id = p.user_id where u.username = 'uma'");
    expect(rows).toEqual([{ prompts: 0 }]);
  });
});

describe("throttled sign-in", () => {
  it("20 wrong passwords, then the right one: throttled with a retry time, allowed after the backoff", { timeout: 90_000 }, async () => {
    await register("tina", "tinas-password");
    const codes: string[] = [];
    for (let i = 0; i < 20; i++) codes.push((await signIn("tina", `wrong-guess-${i}`)).errors![0].extensions!.code!);
    expect(codes.slice(0, 5)).toEqual(Array(5).fill("PRCRD"));
    expect(codes[5]).toBe("PRTHR");
    // The right password must meet a block, not the last moment of one: the
    // block from the latest recorded failure may be ending as the 20 guesses
    // finish. Wait it out; the next wrong guess is recorded and blocks for 2 s or more.
    let guess = await signIn("tina", "wrong-guess-last");
    while (guess.errors![0].extensions!.code === "PRTHR") {
      await new Promise((resolve) => setTimeout(resolve, guess.errors![0].extensions!.retryAfterSeconds! * 1000 + 100));
      guess = await signIn("tina", "wrong-guess-last");
    }
    expect(guess.errors![0].extensions!.code).toBe("PRCRD");
    const throttled = await signIn("tina", "tinas-password");
    expect(throttled.data).toEqual({ authenticate: null });
    expect(throttled.errors![0].extensions).toEqual({ code: "PRTHR", retryAfterSeconds: expect.any(Number) });
    const retryAfterSeconds = throttled.errors![0].extensions!.retryAfterSeconds!;
    expect(retryAfterSeconds).toBeGreaterThanOrEqual(1);
    await new Promise((resolve) => setTimeout(resolve, retryAfterSeconds * 1000 + 200));
    expect((await signIn("tina", "tinas-password")).data!.authenticate.result).toEqual(expect.any(String));
  });

  // Starts a server of its own.
  it("throttles per client address as the trusted proxy reports it (TRUST_PROXY)", { timeout: 120_000 }, async () => {
    const proxied = await startServer({ databaseUrl: db.url, env: { TRUST_PROXY: "loopback", ALLOW_REGISTRATION: "true" } });
    try {
      const from = (address: string, password: string) => fetch(`${proxied.baseUrl}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-for": address },
        body: JSON.stringify({ query: `mutation { authenticate(input: { username: "vera", password: "${password}" }) { result } }` }),
      }).then(async (response) => ((await response.json()) as { errors?: { extensions: { code: string } }[] }).errors?.[0].extensions.code ?? "token");
      await register("vera", "veras-password");
      const codes: string[] = [];
      for (let i = 0; i < 6; i++) codes.push(await from("203.0.113.7", `guess-${i}-guess`));
      expect(codes).toEqual([...Array(5).fill("PRCRD"), "PRTHR"]);
      expect(await from("198.51.100.9", "veras-password")).toBe("token");
    } finally {
      await proxied.stop();
    }
  });

  // Starts a server of its own. One proxy in front: its own X-Forwarded-For entry (the last) is the client's address,
  // whatever the client wrote before it, so rotating the spoofed part gives no fresh guesses.
  it("with TRUST_PROXY=1, a client's own X-Forwarded-For entries do not change its address", { timeout: 120_000 }, async () => {
    const proxied = await startServer({ databaseUrl: db.url, env: { TRUST_PROXY: "1", ALLOW_REGISTRATION: "true" } });
    try {
      const from = (forwardedFor: string, password: string) => fetch(`${proxied.baseUrl}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-for": forwardedFor },
        body: JSON.stringify({ query: `mutation { authenticate(input: { username: "wendy", password: "${password}" }) { result } }` }),
      }).then(async (response) => ((await response.json()) as { errors?: { extensions: { code: string } }[] }).errors?.[0].extensions.code ?? "token");
      await register("wendy", "wendys-password");
      const codes: string[] = [];
      for (let i = 0; i < 6; i++) codes.push(await from(`10.9.9.${i}, 203.0.113.8`, `guess-${i}-guess`));
      expect(codes).toEqual([...Array(5).fill("PRCRD"), "PRTHR"]);
      expect(await from("198.51.100.10", "wendys-password")).toBe("token");
    } finally {
      await proxied.stop();
    }
  });

  // Starts a server of its own. Behind one proxy every client arrives from the proxy's socket address.
  it("paces anonymous sign-ins per client address as TRUST_PROXY resolves it, not per proxy", { timeout: 120_000 }, async () => {
    const proxied = await startServer({ databaseUrl: db.url, env: { TRUST_PROXY: "1", SIGN_INS_PER_SECOND: "1", CALLER_MAX_WAIT: "1" } });
    try {
      const from = (address: string) => fetch(`${proxied.baseUrl}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-for": address },
        body: JSON.stringify({ query: `mutation { authenticate(input: { username: "nobody-${address}", password: "not-the-password" }) { result } }` }),
      }).then(async (response) => ((await response.json()) as { errors?: { extensions: { code: string } }[] }).errors?.[0].extensions.code);
      const busy = Array.from({ length: 8 }, () => from("203.0.113.20"));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await from("203.0.113.21")).toBe("PRCRD");
      expect((await Promise.all(busy)).filter((code) => code === "GRAPHQL_COST_RATE").length).toBeGreaterThan(0);
    } finally {
      await proxied.stop();
    }
  });

  // Starts a server of its own. Each sign-in is a bcrypt in PostgreSQL, SIGN_IN_MAX_CONCURRENT at a time server-wide.
  it("one client's many sign-ins at once do not put another's behind them all", { timeout: 120_000 }, async () => {
    const proxied = await startServer({
      databaseUrl: db.url,
      env: { TRUST_PROXY: "1", SIGN_IN_MAX_CONCURRENT: "1", SIGN_INS_PER_SECOND: "1000", CALLER_MAX_CONCURRENT: "20", CALLER_MAX_WAIT: "2" },
    });
    try {
      const from = (address: string, username: string) => fetch(`${proxied.baseUrl}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-for": address },
        body: JSON.stringify({ query: `mutation { authenticate(input: { username: "${username}", password: "not-the-password" }) { result } }` }),
      }).then(async (response) => ((await response.json()) as { errors?: { extensions: { code: string } }[] }).errors?.[0].extensions.code);
      let answered = 0;
      const many = Array.from({ length: 20 }, (_, i) => from("203.0.113.30", `many-${i}`).finally(() => answered++));
      await new Promise((resolve) => setTimeout(resolve, 200));
      // In line behind at most one of theirs, not nineteen: answered while most of theirs still wait.
      expect(await from("203.0.113.31", "another")).toBe("PRCRD");
      expect(answered).toBeLessThan(10);
      await Promise.all(many);
    } finally {
      await proxied.stop();
    }
  });

  it("an unknown username is throttled the same way", async () => {
    const codes: string[] = [];
    for (let i = 0; i < 6; i++) codes.push((await signIn("nobody-at-all", `wrong-guess-${i}`)).errors![0].extensions!.code!);
    expect(codes).toEqual([...Array(5).fill("PRCRD"), "PRTHR"]);
  });

  it("refuses an operation with several sign-ins or registrations before running any", async () => {
    await register("uma", "umas-password");
    const aliases = Array.from({ length: 10 }, (_, i) => `a${i}: authenticate(input: { username: "uma", password: "guess-${i}-umas" }) { result }`);
    const batch = await graphql(server, `mutation { ${aliases.join(" ")} }`);
    expect(batch).toMatchObject({ status: 400, errors: [{ extensions: { code: "ONE_SIGN_IN_PER_REQUEST" } }] });
    const viaFragment = await graphql(server,
      `mutation { ...Twice ...Twice } fragment Twice on Mutation { register(input: { username: "sneaky", password: "long-enough" }) { result } }`);
    expect(viaFragment.status).toBe(400);
    const registrations = Array.from({ length: 5 }, (_, i) => `r${i}: register(input: { username: "bulk${i}", password: "long-enough" }) { result }`);
    expect((await graphql(server, `mutation { ${registrations.join(" ")} }`)).status).toBe(400);
    const { rows } = await db.pool.query(
      `select (select count(*)::int from app_private.sign_in_failures where key like 'user:uma%') as failures,
              (select count(*)::int from app_public.users where username like 'bulk%' or username = 'sneaky') as users`);
    expect(rows[0]).toEqual({ failures: 0, users: 0 });
  });
});

describe("tokens from an identity provider (RS256)", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const idpToken = (claims: Record<string, unknown>, issuer = IDP_ISSUER) =>
    jwt.sign({ exp: now() + 600, ...claims }, identityProvider.privateKey, { algorithm: "RS256", audience: "prompter", issuer });

  it("is accepted for an existing user, with the rights the database gives", async () => {
    const user = await createUser(db.pool);
    const token = idpToken({ user_id: user, role: "app_admin" });
    expect((await usersSeen(token)).data).toEqual({ allUsers: { totalCount: 1 } });
  });

  it.each([
    ["from another issuer", () => idpToken({ user_id: "1" }, "https://evil.example.test/")],
    ["living 10 years", () => idpToken({ user_id: "1", exp: now() + 10 * 365 * 86400 })],
    ["without iat", () => jwt.sign({ user_id: "1", exp: now() + 600 }, identityProvider.privateKey,
      { algorithm: "RS256", audience: "prompter", issuer: IDP_ISSUER, noTimestamp: true })],
  ])("is refused %s", async (_name, token) => {
    await db.pool.query("insert into app_public.users (id, username) overriding system value values (1, 'first') on conflict do nothing");
    expect(await restStatus(token())).toEqual({ status: 401, code: "INVALID_TOKEN" });
  });

  it("is refused for a user that does not exist, and after the user signs out everywhere", async () => {
    await expectSessionEnded(idpToken({ user_id: "987654321" }));
    const user = await createUser(db.pool);
    const token = idpToken({ user_id: user, iat: now() - 5 });
    expect((await restStatus(token)).status).toBe(200);
    await db.pool.query("select app_private.revoke_tokens($1)", [user]);
    await expectSessionEnded(token);
  });

  // Revocation ends the tokens issued before it: one dated an hour ahead would survive signOutEverywhere.
  it("is refused when issued in the future, as an HS256 token is; a minute of clock skew is allowed", async () => {
    const user = await createUser(db.pool);
    const future = { status: 401, code: "TOKEN_ISSUED_IN_FUTURE" };
    expect(await restStatus(idpToken({ user_id: user, iat: now() + 3600 }))).toEqual(future);
    expect(await restStatus(signTestToken(user, { claims: { iat: now() + 3600 } }))).toEqual(future);
    expect((await restStatus(idpToken({ user_id: user, iat: now() + 30 }))).status).toBe(200);
    const response = await graphql(server, "{ currentUserId }", {}, idpToken({ user_id: user, iat: now() + 3600 }));
    expect({ status: response.status, code: response.errors?.[0]?.extensions?.code }).toEqual(future);
  });
});

describe("registration switch", () => {
  // Starts a server of its own.
  it("ALLOW_REGISTRATION=false refuses register with PRREG", { timeout: 120_000 }, async () => {
    const closed = await startServer({ databaseUrl: db.url, env: { ALLOW_REGISTRATION: "false" } });
    try {
      const response = await graphql(closed, `mutation { register(input: { username: "walter", password: "long-enough" }) { result } }`);
      expect(response.errors?.[0]).toMatchObject({ extensions: { code: "PRREG" } });
      expect((await db.pool.query("select count(*)::int as n from app_public.users where username = 'walter'")).rows[0].n).toBe(0);
    } finally {
      await closed.stop();
    }
  });
});

describe("renaming does not tell at full speed which usernames exist", () => {
  it("updateUserByRowId is gone; changeUsername answers false for a taken name, then PRTHR with Retry-After", async () => {
    const taken = await createUser(db.pool, { username: "someone_known" });
    const prober = await createUser(db.pool);
    const token = signTestToken(prober);
    const viaUpdate = await graphql(server, `mutation { updateUserByRowId(input: { rowId: "${prober}", userPatch: { username: "someone_known" } }) { user { username } } }`, {}, token);
    // Not in the schema any more: a validation error (200 as application/json, as the GraphQL-over-HTTP spec asks).
    expect(viaUpdate.errors?.[0].message).toMatch(/updateUserByRowId/);
    const rename = (name: string) =>
      graphql(server, "mutation ($n: String!) { changeUsername(input: { username: $n }) { result } }", { n: name }, token);
    expect(await rename("prober_renamed")).toEqual({ status: 200, data: { changeUsername: { result: true } } });
    for (let i = 0; i < 5; i++) expect(await rename("Someone_Known")).toEqual({ status: 200, data: { changeUsername: { result: false } } });
    const throttled = await rename("someone_known");
    expect(throttled.errors![0].extensions).toEqual({ code: "PRTHR", retryAfterSeconds: expect.any(Number) });
    const names = await db.pool.query("select id::text, username from app_public.users where id in ($1, $2) order by id", [taken, prober]);
    expect(names.rows).toEqual([{ id: taken, username: "someone_known" }, { id: prober, username: "prober_renamed" }]);
  });
});

describe("registering does not tell at full speed which usernames exist", () => {
  it("answers PRTKN for a taken name until the address has tried 30, then PRTHR, and creates nothing", async () => {
    await createUser(db.pool, { username: "already_here" });
    // Probes from this address earlier in the file (renames) count too.
    const { rows: [{ earlier }] } = await db.pool.query(
      "select coalesce(sum(failures), 0)::int as earlier from app_private.sign_in_failures where key like 'username probes from address:%'");
    const codes: string[] = [];
    for (let i = 0; i < 31 - earlier; i++) codes.push((await register("Already_Here", "long-enough-password")).errors![0].extensions!.code as string);
    expect(codes).toEqual([...Array(30 - earlier).fill("PRTKN"), "PRTHR"]);
    expect((await register("free_but_throttled", "long-enough-password")).errors![0].extensions!.code).toBe("PRTHR");
    const { rows } = await db.pool.query("select count(*)::int as n from app_public.users where lower(username) in ('already_here', 'free_but_throttled')");
    expect(rows[0].n).toBe(1);
  }, 60_000);
});
