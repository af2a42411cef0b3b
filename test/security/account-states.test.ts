// Sign-in for accounts an operator has changed (`prompter user disable|enable|
// demote|remove`, the app_private functions behind them): in SQL through
// app_public.authenticate, and through a running gateway (GraphQL sign-in, the
// token then used on REST and GraphQL). A disabled or removed account gets no
// token even with the right password, and that attempt counts as a failure: it
// neither resets the throttle nor tells a guesser the password was right.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import jwt from "jsonwebtoken";
import type pg from "pg";
import { useTestDatabase } from "../support/db.ts";
import { graphql, startServer, type RunningServer } from "../support/server.ts";
import { asOwner, fromAddress as fromAddressIn, signInAttempt } from "../support/sign-in.ts";

const db = useTestDatabase();
const fromAddress = <T>(address: string, work: (client: pg.PoolClient) => Promise<T>) => fromAddressIn(db.pool, address, work);

/** The token's claims, or "wrong", or the code the sign-in was refused with. */
async function signInSql(client: pg.PoolClient, username: string, password: string) {
  const { outcome, ...token } = await signInAttempt(client, username, password);
  return outcome === "token" ? token : outcome;
}

/** Runs an operator's function (the owner's) in the client's transaction. */
const asOperator = (client: pg.PoolClient, sql: string) => asOwner(client, () => client.query(sql));

/** The username's failure counts, and whether the last one blocked its key (for a second or more). */
const failuresOf = (client: pg.PoolClient, username: string) => asOwner(client, async () => (await client.query(
  `select key, failures, blocked_until >= last_failed_at + interval '1 second' as blocked from app_private.sign_in_failures
    where key like 'user:' || $1 || '%' and failures > 0 order by key`, [username])).rows);

describe("app_public.authenticate", () => {
  it("gives a disabled user no token for the right password, and counts it as a failure", async () => {
    await fromAddress("10.1.0.1", async (c) => {
      await c.query("select app_public.register('dora', 'doras-password')");
      expect(await signInSql(c, "dora", "wrong-password-1")).toBe("wrong");
      expect(await signInSql(c, "dora", "wrong-password-2")).toBe("wrong");
      await asOperator(c, "select app_private.set_user_disabled('dora', true)");
      expect(await signInSql(c, "dora", "doras-password")).toBe("wrong");
      expect(await signInSql(c, "DORA", "doras-password")).toBe("wrong");
      // Two wrong passwords and two right ones while disabled: four failures, none forgotten.
      expect(await failuresOf(c, "dora")).toEqual([
        { key: "user:dora", failures: 4, blocked: false },
        { key: "user:dora from 10.1.0.1", failures: 4, blocked: false },
      ]);
      expect(await signInSql(c, "dora", "doras-password")).toBe("wrong");
      expect(await failuresOf(c, "dora")).toEqual([
        { key: "user:dora", failures: 5, blocked: false },
        { key: "user:dora from 10.1.0.1", failures: 5, blocked: true },
      ]);
    });
  });

  it("signs a re-enabled user in with a token of the generation after the disable, and forgets the failures", async () => {
    await fromAddress("10.1.0.2", async (c) => {
      const { rows: [registered] } = await c.query("select user_id, token_generation from app_public.register('enid', 'enids-password')");
      expect(registered.token_generation).toBe(0);
      await asOperator(c, "select app_private.set_user_disabled('enid', true)");
      expect(await signInSql(c, "enid", "enids-password")).toBe("wrong");
      await asOperator(c, "select app_private.set_user_disabled('enid', false)");
      expect(await signInSql(c, "enid", "enids-password")).toEqual({ role: "app_user", userId: String(registered.user_id), generation: 1 });
      // This address's failures are forgotten; the username's count from anywhere is kept
      // (the owner signing in gives guessers elsewhere no fresh allowance).
      expect((await failuresOf(c, "enid")).map((failure) => failure.key)).toEqual(["user:enid"]);
      // The token issued before the disable stays ended after the enable.
      await c.query("reset role");
      const session = (generation: number) => c.query("savepoint s").then(() =>
        c.query("select app_hidden.gateway_session_role($1, $2, null) as role", [registered.user_id, generation]).then(
          ({ rows }) => rows[0].role,
          async (error) => (await c.query("rollback to savepoint s"), error.code)));
      expect(await session(0)).toBe("PRSES");
      expect(await session(1)).toBe("app_user");
    });
  });

  it("gives a removed user's name no token, and counts the attempt", async () => {
    await fromAddress("10.1.0.3", async (c) => {
      await c.query("select app_public.register('rory', 'rorys-password')");
      expect(await signInSql(c, "rory", "rorys-password")).toMatchObject({ role: "app_user" });
      await asOperator(c, "select app_private.remove_user('rory')");
      expect(await signInSql(c, "rory", "rorys-password")).toBe("wrong");
      expect(await failuresOf(c, "rory")).toEqual([
        { key: "user:rory", failures: 1, blocked: false },
        { key: "user:rory from 10.1.0.3", failures: 1, blocked: false },
      ]);
    });
  });

  it("signs a promoted user in as app_admin and a demoted one as app_user", async () => {
    await fromAddress("10.1.0.4", async (c) => {
      await c.query("select app_public.register('paula', 'paulas-password')");
      await asOperator(c, "select app_private.set_user_admin('paula', true)");
      expect(await signInSql(c, "paula", "paulas-password")).toMatchObject({ role: "app_admin" });
      await asOperator(c, "select app_private.set_user_admin('Paula', false)");
      expect(await signInSql(c, "paula", "paulas-password")).toMatchObject({ role: "app_user" });
    });
  });
});

describe("through the gateway", () => {
  const IDP_ISSUER = "https://idp.example.test/";
  const identityProvider = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  /** A token an identity provider issues now (RS256, no token generation). */
  const idpToken = (userId: string) => jwt.sign({ user_id: userId, exp: Math.floor(Date.now() / 1000) + 600 },
    identityProvider.privateKey, { algorithm: "RS256", audience: "prompter", issuer: IDP_ISSUER });
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({
      databaseUrl: db.url,
      env: { ALLOW_REGISTRATION: "true", JWT_PUBLIC_KEY: identityProvider.publicKey, JWT_ISSUER: IDP_ISSUER },
    });
  });
  afterAll(() => server?.stop());

  const signIn = (username: string, password: string) =>
    graphql(server, "mutation ($u: String!, $p: String!) { authenticate(input: { username: $u, password: $p }) { result } }", { u: username, p: password });
  const register = async (username: string, password: string) =>
    (await graphql(server, "mutation ($u: String!, $p: String!) { register(input: { username: $u, password: $p }) { result } }", { u: username, p: password }))
      .data!.register.result as string;
  const operator = (sql: string, ...parameters: unknown[]) => db.pool.query(sql, parameters);

  /** "token" (and the token), or the code the sign-in was refused with. */
  async function signInOutcome(username: string, password: string) {
    const answer = await signIn(username, password);
    const token = answer.data?.authenticate?.result as string | undefined;
    return token ? { outcome: "token", token } : { outcome: answer.errors?.[0].extensions?.code, data: answer.data };
  }

  /** What a token gets: the REST status and code, and GraphQL's user id and users seen (or its code). */
  async function useToken(token: string) {
    const rest = await fetch(`${server.baseUrl}/api/exports`, { headers: { authorization: `Bearer ${token}` } });
    const restBody = (await rest.json()) as { error?: { code: string } };
    const gql = await graphql(server, "{ currentUserId allUsers { totalCount } }", {}, token);
    return {
      rest: restBody.error ? `${rest.status} ${restBody.error.code}` : rest.status,
      graphql: gql.errors ? `${gql.status} ${gql.errors[0].extensions?.code}` : { userId: gql.data!.currentUserId, usersSeen: gql.data!.allUsers.totalCount },
    };
  }

  it("a disabled user: old token refused on REST and GraphQL, the right password gives no token; enabled: only a new sign-in works", async () => {
    const before = await register("gwen", "gwens-password");
    const userId = String(jwt.decode(before, { json: true })!.user_id);
    expect(await useToken(before)).toEqual({ rest: 200, graphql: { userId, usersSeen: 1 } });

    await operator("select app_private.set_user_disabled('gwen', true)");
    expect(await useToken(before)).toEqual({ rest: "401 PRSES", graphql: "401 PRSES" });
    expect(await signInOutcome("gwen", "gwens-password")).toEqual({ outcome: "PRCRD", data: { authenticate: null } });

    // The identity provider still vouches for the user: its tokens, issued after the disable, are refused too.
    await new Promise((resolve) => setTimeout(resolve, 1100)); // iat counts whole seconds
    expect(await useToken(idpToken(userId))).toEqual({ rest: "401 PRSES", graphql: "401 PRSES" });

    await operator("select app_private.set_user_disabled('gwen', false)");
    expect(await useToken(before)).toEqual({ rest: "401 PRSES", graphql: "401 PRSES" });
    expect((await useToken(idpToken(userId))).rest).toBe(200);
    const after = await signInOutcome("gwen", "gwens-password");
    expect(after.outcome).toBe("token");
    expect(await useToken(after.token!)).toEqual({ rest: 200, graphql: { userId, usersSeen: 1 } });
  });

  it("a demoted admin signs in as a plain user, and the admin's earlier token reads only their own rows", async () => {
    const plain = await register("hugo", "hugos-password");
    await operator("select app_private.set_user_admin('hugo', true)");
    const asAdmin = await signInOutcome("hugo", "hugos-password");
    expect(jwt.decode(asAdmin.token!, { json: true })!.role).toBe("app_admin");
    const everyone = Number((await operator("select count(*) from app_public.users")).rows[0].count);
    expect(everyone).toBeGreaterThan(1);
    expect((await useToken(asAdmin.token!)).graphql).toMatchObject({ usersSeen: everyone });

    await operator("select app_private.set_user_admin('hugo', false)");
    expect((await useToken(asAdmin.token!)).graphql).toMatchObject({ usersSeen: 1 });
    const demoted = await signInOutcome("hugo", "hugos-password");
    expect(jwt.decode(demoted.token!, { json: true })!.role).toBe("app_user");
    expect((await useToken(demoted.token!)).graphql).toMatchObject({ usersSeen: 1 });
    expect((await useToken(plain)).graphql).toMatchObject({ usersSeen: 1 });
  });

  it("a removed user: token refused, sign-in refused; a new account of the same name is another user", async () => {
    const before = await register("ivan", "ivans-password");
    await operator("select app_private.remove_user('ivan')");
    expect(await useToken(before)).toEqual({ rest: "401 PRSES", graphql: "401 PRSES" });
    expect(await signInOutcome("ivan", "ivans-password")).toEqual({ outcome: "PRCRD", data: { authenticate: null } });
    const again = await register("ivan", "ivans-new-password");
    expect(jwt.decode(again, { json: true })!.user_id).not.toEqual(jwt.decode(before, { json: true })!.user_id);
    expect(await useToken(before)).toEqual({ rest: "401 PRSES", graphql: "401 PRSES" });
    expect((await useToken(again)).rest).toBe(200);
  });
});
