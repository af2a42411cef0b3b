// Authentication at the gateway: the token matrix on REST and GraphQL (a bad
// token is refused with 401 whatever the route), register/authenticate through
// GraphQL, and `prompter token`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { createHmac, generateKeyPairSync } from "node:crypto";
import path from "node:path";
import { promisify } from "node:util";
import jwt from "jsonwebtoken";
import { createUser, useTestDatabase } from "../support/db.ts";
import { callRest } from "../support/openapi.ts";
import { graphql, signTestToken, startServer, TEST_JWT_SECRET, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
let alice: string;
let bob: string;

const rsaKeys = () =>
  generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
const identityProvider = rsaKeys();
const IDP_ISSUER = "https://idp.example.test/";
const strangerKeys = rsaKeys();

beforeAll(async () => {
  alice = await createUser(db.pool, { username: "alice" });
  bob = await createUser(db.pool);
  server = await startServer({
    databaseUrl: db.url,
    env: { JWT_PUBLIC_KEY: identityProvider.publicKey, JWT_ISSUER: IDP_ISSUER, JWT_EXPIRES_IN: "2h", JWT_MAX_LIFETIME: "12h" },
  });
});
afterAll(() => server?.stop());

const base64url = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);
const claimsOf = (userId: string) => ({ role: "app_user", user_id: userId, exp: now() + 600 });

async function restAs(authorization?: string) {
  const answer = await callRest(server.baseUrl, "GET", "/api/exports", { headers: authorization === undefined ? {} : { authorization } });
  return { status: answer.status, challenge: answer.headers.get("www-authenticate"), body: answer.body };
}

async function graphqlAs(authorization?: string) {
  const response = await fetch(`${server.baseUrl}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(authorization === undefined ? {} : { authorization }) },
    body: JSON.stringify({ query: "{ currentUserId }" }),
  });
  return { status: response.status, challenge: response.headers.get("www-authenticate"), body: await response.json() };
}

describe("bearer tokens", () => {
  it("without a token: REST needs sign-in, GraphQL runs as anonymous", async () => {
    // RFC 6750 3.1: a request without credentials gets the challenge but no error code.
    expect(await restAs()).toEqual({
      status: 401,
      challenge: 'Bearer realm="prompter"',
      body: { success: false, error: { code: "SIGN_IN_REQUIRED", message: expect.any(String) } },
    });
    expect(await graphqlAs()).toEqual({ status: 200, challenge: null, body: { data: { currentUserId: null } } });
  });

  it("accepts a valid HS256 token and acts as its user", async () => {
    const token = `Bearer ${signTestToken(alice)}`;
    expect(await restAs(token)).toEqual({ status: 200, challenge: null, body: { success: true, exports: [], total: 0, next_url: null } });
    expect(await graphqlAs(token)).toEqual({ status: 200, challenge: null, body: { data: { currentUserId: alice } } });
  });

  it("accepts RS256 tokens from the identity provider's key (JWT_PUBLIC_KEY)", async () => {
    const token = jwt.sign(claimsOf(bob), identityProvider.privateKey, { algorithm: "RS256", audience: "prompter", issuer: IDP_ISSUER });
    expect((await restAs(`Bearer ${token}`)).status).toBe(200);
    expect((await graphqlAs(`Bearer ${token}`)).body).toEqual({ data: { currentUserId: bob } });
  });

  const valid = () => signTestToken(alice);
  const refused: [string, () => string, string][] = [
    ["expired", () => signTestToken(alice, { expiresInSeconds: -60 }), "TOKEN_EXPIRED"],
    ["tampered (user_id changed, signature kept)", () => {
      const [header, , signature] = valid().split(".");
      return `${header}.${base64url({ ...jwt.decode(valid()) as object, user_id: bob })}.${signature}`;
    }, "INVALID_TOKEN"],
    ["signed with another secret", () => signTestToken(alice, { secret: "not-the-secret-of-this-server-0123456789" }), "INVALID_TOKEN"],
    ["alg none (unsigned)", () => `${base64url({ alg: "none", typ: "JWT" })}.${base64url({ ...claimsOf(alice), aud: "prompter" })}.`, "INVALID_TOKEN"],
    ["RS256 signed by another key", () => jwt.sign(claimsOf(alice), strangerKeys.privateKey, { algorithm: "RS256", audience: "prompter", issuer: IDP_ISSUER }), "INVALID_TOKEN"],
    ["HS256 keyed with the public key (algorithm confusion)", () => {
      const unsigned = `${base64url({ alg: "HS256", typ: "JWT" })}.${base64url({ ...claimsOf(alice), aud: "prompter" })}`;
      return `${unsigned}.${createHmac("sha256", identityProvider.publicKey).update(unsigned).digest("base64url")}`;
    }, "INVALID_TOKEN"],
    ["for another audience", () => jwt.sign(claimsOf(alice), TEST_JWT_SECRET, { audience: "someone-else" }), "INVALID_TOKEN"],
    ["claiming a database role it may not use", () => signTestToken(alice, { claims: { role: "postgres" } }), "INVALID_TOKEN"],
    ["without exp", () => jwt.sign({ role: "app_user", user_id: alice }, TEST_JWT_SECRET, { audience: "prompter" }), "INVALID_TOKEN"],
    ["garbage", () => "not.a.token", "INVALID_TOKEN"],
  ];
  it.each(refused)("refuses a token %s with 401 and a Bearer challenge on REST and GraphQL", async (_name, token, code) => {
    const challenge = expect.stringMatching(/^Bearer realm="prompter", error="invalid_token", error_description="[^"]+"$/);
    expect(await restAs(`Bearer ${token()}`)).toEqual({
      status: 401, challenge, body: { success: false, error: { code, message: expect.any(String) } },
    });
    // On /graphql the body is a GraphQL response, which GraphQL clients know how to read.
    expect(await graphqlAs(`Bearer ${token()}`)).toEqual({
      status: 401, challenge, body: { errors: [{ message: expect.any(String), extensions: { code } }] },
    });
  });

  // The gateway remembers tokens it has verified (auth.ts, VerifiedTokens).
  it("refuses a token it accepted before once the token has expired", async () => {
    const token = `Bearer ${signTestToken(alice, { expiresInSeconds: 2 })}`;
    expect((await restAs(token)).status).toBe(200);
    expect((await graphqlAs(token)).body).toEqual({ data: { currentUserId: alice } });
    const exp = (jwt.decode(token.slice("Bearer ".length)) as jwt.JwtPayload).exp!;
    await new Promise((resolve) => setTimeout(resolve, (exp + 0.2) * 1000 - Date.now()));
    expect((await restAs(token)).body).toMatchObject({ error: { code: "TOKEN_EXPIRED" } });
    expect((await graphqlAs(token)).body).toMatchObject({ errors: [{ extensions: { code: "TOKEN_EXPIRED" } }] });
  });

  it("does not take a token with an accepted token's claims but another signature for it", async () => {
    const token = valid();
    expect((await graphqlAs(`Bearer ${token}`)).status).toBe(200);
    const [header, payload] = token.split(".");
    const forged = `${header}.${payload}.${createHmac("sha256", "not-the-secret-of-this-server-0123456789").update(`${header}.${payload}`).digest("base64url")}`;
    expect(await graphqlAs(`Bearer ${forged}`)).toMatchObject({ status: 401, body: { errors: [{ extensions: { code: "INVALID_TOKEN" } }] } });
    expect((await restAs(`Bearer ${forged}`)).status).toBe(401);
  });

  it("logs and counts a request refused for its token under the route it asked for, not \"other\"", async () => {
    const asked: [string, string, string][] = [
      ["GET", "/api/exports", "/api/exports"],
      ["GET", "/api/exports/12/download", "/api/exports/:id/download"],
      ["POST", "/api/storage/export-all", "/api/storage/export-all"],
      ["POST", "/graphql", "/graphql"],
      ["GET", "/api/no-such-endpoint", "other"],
    ];
    for (const [method, pathname] of asked) {
      const response = await fetch(`${server.baseUrl}${pathname}`, { method, headers: { authorization: `Bearer refused-${pathname}` } });
      expect(response.status).toBe(401);
    }
    const refusedLines = () => server.logLines().filter((line) => line.msg === "request" && line.status === 401);
    await expect.poll(() => asked.every(([, pathname]) => refusedLines().some((line) => line.path === pathname))).toBe(true);
    const lines = refusedLines();
    for (const [method, pathname, route] of asked) {
      expect(lines.filter((line) => line.path === pathname).map((line) => ({ method: line.method, route: line.route }))).toContainEqual({ method, route });
    }
    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    for (const [method, , route] of asked.slice(0, 4)) {
      expect(metrics).toMatch(new RegExp(`^prompter_http_request_duration_seconds_count\\{method="${method}",route="${route.replace(/[/:]/g, "\\$&")}",status="401"\\} [1-9]`, "m"));
    }
  });

  it("refuses an Authorization header that is not a bearer token", async () => {
    for (const header of ["Basic YWxpY2U6c2VjcmV0", `Bearer ${valid()} extra`, "Bearer"]) {
      expect((await restAs(header)).status).toBe(401);
      expect((await graphqlAs(header)).status).toBe(401);
    }
  });
});

describe("register and authenticate through GraphQL", () => {
  const register = (username: string, password: string) =>
    graphql(server, "mutation ($u: String!, $p: String!) { register(input: { username: $u, password: $p }) { result } }", { u: username, p: password });
  const authenticate = (username: string, password: string) =>
    graphql(server, "mutation ($u: String!, $p: String!) { authenticate(input: { username: $u, password: $p }) { result } }", { u: username, p: password });
  const errorCode = (response: Awaited<ReturnType<typeof register>>) => response.errors?.[0]?.extensions?.code;

  it("register returns a token for the new user that lasts JWT_EXPIRES_IN", async () => {
    const { data } = await register("carol", "correct horse battery");
    const token = data!.register.result as string;
    const claims = jwt.verify(token, TEST_JWT_SECRET, { audience: "prompter", issuer: "prompter" }) as jwt.JwtPayload;
    expect(claims.role).toBe("app_user");
    // exp comes from SQL (JWT_EXPIRES_IN=2h, rounded to the second), iat from the signer.
    expect(Math.abs(claims.exp! - claims.iat! - 7200)).toBeLessThanOrEqual(2);
    const { rows } = await db.pool.query("select id::text from app_public.users where username = 'carol'");
    expect((await graphqlAs(`Bearer ${token}`)).body).toEqual({ data: { currentUserId: rows[0].id } });
  });

  it("authenticate returns a token for the right password only", async () => {
    await register("dave", "dave-password-1");
    const { data } = await authenticate("DAVE", "dave-password-1");
    expect((jwt.decode(data!.authenticate.result) as jwt.JwtPayload).role).toBe("app_user");

    const wrongPassword = await authenticate("dave", "not-his-password");
    const unknownUser = await authenticate("nobody-here", "whatever-password");
    expect(wrongPassword.data).toEqual({ authenticate: null });
    expect(wrongPassword.errors).toEqual([expect.objectContaining({ message: "Wrong username or password.", extensions: { code: "PRCRD" } })]);
    expect(unknownUser.errors?.[0].message).toBe(wrongPassword.errors?.[0].message);
    expect(errorCode(unknownUser)).toBe("PRCRD");
  });

  it("reports the database's own codes for bad registrations, and creates nothing", async () => {
    expect(errorCode(await register("alice", "long-enough-password"))).toBe("PRTKN");
    expect(errorCode(await register("erin", "short"))).toBe("PRWKP");
    expect(errorCode(await register("9lives", "long-enough-password"))).toBe("PRUSN");
    const { rows } = await db.pool.query("select count(*)::int as n from app_public.users where username in ('erin', '9lives')");
    expect(rows[0].n).toBe(0);
  });
});

describe("npx prompter token", () => {
  const run = (...args: string[]) =>
    promisify(execFile)(path.resolve("node_modules/.bin/node"), ["src/cli.ts", "token", ...args], {
      env: { ...process.env, DATABASE_URL: db.url, JWT_SECRET: TEST_JWT_SECRET, JWT_EXPIRES_IN: "1h" },
    });

  it("prints a token the gateway accepts for that user", async () => {
    const { stdout } = await run("Alice");
    const token = stdout.trim();
    expect(jwt.decode(token)).toMatchObject({ role: "app_user", user_id: alice, aud: "prompter" });
    expect((await graphqlAs(`Bearer ${token}`)).body).toEqual({ data: { currentUserId: alice } });
  });

  it("fails with a message for an unknown user", async () => {
    const failure = await run("no-such-user").then(() => undefined, (error) => error);
    expect(failure).toMatchObject({ code: 2, stderr: expect.stringContaining('No user "no-such-user"') });
  });
});
