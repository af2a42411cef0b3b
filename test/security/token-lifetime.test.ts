// JWT_MAX_LIFETIME against a running gateway, for prompter's own tokens (HS256)
// and an identity provider's (RS256): a token may not live longer than the
// limit counted from when it is checked, nor counted from its iat, whichever is
// longer; a token without iat is counted from now. A token verified once is
// checked again at every use, so it stops working at its exp.
// (Refusing a token whose iat is in the future is a rule of its own, tested elsewhere.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import jwt from "jsonwebtoken";
import { createUser, useTestDatabase } from "../support/db.ts";
import { startServer, TEST_JWT_SECRET, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
const MAX_LIFETIME_SECONDS = 2 * 3600;
// Beyond the gateway's allowance for clocks that differ (60 s), and well within it.
const OVER = 300;
const UNDER = -300;
const IDP_ISSUER = "https://idp.example.test/";
const identityProvider = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  publicKeyEncoding: { type: "spki", format: "pem" },
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
});
let server: RunningServer;
let userId: string;

beforeAll(async () => {
  userId = await createUser(db.pool);
  server = await startServer({
    databaseUrl: db.url,
    env: { JWT_EXPIRES_IN: "1h", JWT_MAX_LIFETIME: "2h", JWT_PUBLIC_KEY: identityProvider.publicKey, JWT_ISSUER: IDP_ISSUER },
  });
});
afterAll(() => server?.stop());

const now = () => Math.floor(Date.now() / 1000);

/** A token with these exp and iat (undefined: none), signed as prompter (HS256) or the identity provider (RS256). */
function tokenFor(algorithm: "HS256" | "RS256", times: { exp: number; iat?: number }): string {
  if (algorithm === "HS256") {
    return jwt.sign({ role: "app_user", user_id: userId, token_generation: 0, exp: times.exp, ...(times.iat === undefined ? {} : { iat: times.iat }) },
      TEST_JWT_SECRET,
      { algorithm: "HS256", audience: "prompter", issuer: "prompter", noTimestamp: times.iat === undefined });
  }
  return jwt.sign({ user_id: userId, exp: times.exp, ...(times.iat === undefined ? {} : { iat: times.iat }) },
    identityProvider.privateKey, { algorithm: "RS256", audience: "prompter", issuer: IDP_ISSUER, noTimestamp: times.iat === undefined });
}

/** 200, or the status and code the gateway refused the token with. */
async function outcome(token: string) {
  const response = await fetch(`${server.baseUrl}/api/exports`, { headers: { authorization: `Bearer ${token}` } });
  const body = (await response.json()) as { error?: { code: string } };
  return response.ok ? response.status : `${response.status} ${body.error?.code}`;
}

describe.each(["HS256", "RS256"] as const)("%s tokens", (algorithm) => {
  it("live at most JWT_MAX_LIFETIME from now: within it accepted, beyond it refused", async () => {
    expect(await outcome(tokenFor(algorithm, { iat: now(), exp: now() + MAX_LIFETIME_SECONDS + UNDER }))).toBe(200);
    expect(await outcome(tokenFor(algorithm, { iat: now(), exp: now() + MAX_LIFETIME_SECONDS + OVER }))).toBe("401 INVALID_TOKEN");
  });

  it("issued long ago, count from their iat: refused once exp - iat is past the limit, though exp is near", async () => {
    expect(await outcome(tokenFor(algorithm, { iat: now() - 3600, exp: now() + MAX_LIFETIME_SECONDS - 3600 + UNDER }))).toBe(200);
    expect(await outcome(tokenFor(algorithm, { iat: now() - MAX_LIFETIME_SECONDS, exp: now() + 600 }))).toBe("401 INVALID_TOKEN");
    expect(await outcome(tokenFor(algorithm, { iat: now() - 30 * 86400, exp: now() + 60 }))).toBe("401 INVALID_TOKEN");
  });

  it("whatever their iat says, never count from later than now", async () => {
    // An iat just ahead (within the clock tolerance), with an exp a lifetime after it: from now, longer than allowed.
    expect(await outcome(tokenFor(algorithm, { iat: now() + 50, exp: now() + 50 + MAX_LIFETIME_SECONDS + 30 }))).toBe("401 INVALID_TOKEN");
    // An iat a month ahead is refused for that alone.
    expect(await outcome(tokenFor(algorithm, { iat: now() + 30 * 86400, exp: now() + 30 * 86400 + 3600 }))).toBe("401 TOKEN_ISSUED_IN_FUTURE");
  });

  it("stop working at their exp, though verified (and accepted) before", async () => {
    const token = tokenFor(algorithm, { iat: now(), exp: now() + 2 });
    expect(await outcome(token)).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 3100));
    expect(await outcome(token)).toBe("401 TOKEN_EXPIRED");
  });
});

describe("HS256 tokens without iat", () => {
  it("count from now", async () => {
    expect(await outcome(tokenFor("HS256", { exp: now() + MAX_LIFETIME_SECONDS + UNDER }))).toBe(200);
    expect(await outcome(tokenFor("HS256", { exp: now() + MAX_LIFETIME_SECONDS + OVER }))).toBe("401 INVALID_TOKEN");
  });
});
