// Authentication rules in SQL: what app_hidden.gateway_session_role answers for a
// token's user, how revocation, sign-in throttling and the registration
// switch behave, and the operators' `prompter user` commands.
import { describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import path from "node:path";
import type pg from "pg";
import { publicDatabaseError } from "../src/server/errors.ts";
import { actAs, createUser, errorOf, useTestDatabase } from "./support/db.ts";

const db = useTestDatabase();

const sessionRole = (userId: string, generation: number | null, issuedAt: number | null = null) =>
  db.pool.query<{ role: string }>("select app_hidden.gateway_session_role($1, $2, $3) as role", [userId, generation, issuedAt])
    .then(({ rows }) => rows[0].role, (error) => (error as { code: string }).code);

const generationOf = async (userId: string) =>
  (await db.pool.query<{ g: number }>("select token_generation as g from app_public.users where id = $1", [userId])).rows[0].g;

describe("app_hidden.gateway_session_role", () => {
  it("answers the role users.is_admin gives now, whatever the token said", async () => {
    const user = await createUser(db.pool);
    expect(await sessionRole(user, 0)).toBe("app_user");
    await db.pool.query("update app_public.users set is_admin = true where id = $1", [user]);
    expect(await sessionRole(user, 0)).toBe("app_admin");
  });

  it("refuses a disabled, a deleted or an unknown user, and an old generation, with PRSES", async () => {
    const user = await createUser(db.pool);
    await db.pool.query("select app_private.revoke_tokens($1)", [user]);
    expect(await sessionRole(user, 0)).toBe("PRSES");
    expect(await sessionRole(user, 1)).toBe("app_user");
    await db.pool.query("update app_public.users set is_disabled = true where id = $1", [user]);
    expect(await sessionRole(user, 1)).toBe("PRSES");
    await db.pool.query("delete from app_public.users where id = $1", [user]);
    expect(await sessionRole(user, 1)).toBe("PRSES");
  });

  it("takes external tokens (no generation) issued after the last revocation only", async () => {
    const user = await createUser(db.pool);
    const now = Math.floor(Date.now() / 1000);
    expect(await sessionRole(user, null, now - 3600)).toBe("app_user");
    await db.pool.query("select app_private.revoke_tokens($1)", [user]);
    expect(await sessionRole(user, null, now - 3600)).toBe("PRSES");
    expect(await sessionRole(user, null, now + 5)).toBe("app_user");
  });
});

/** As the gateway calls SQL for an anonymous client at `address`. */
function fromAddress<T>(address: string, work: (client: pg.PoolClient) => Promise<T>) {
  return actAs(db.pool, { role: "app_anonymous" }, async (client) => {
    await client.query("select set_config('prompter.client_address', $1, true), set_config('prompter.allow_registration', 'on', true)", [address]);
    return work(client);
  });
}

/** "token", "wrong" or the error's code; a savepoint keeps the transaction usable after an error. */
async function attempt(client: pg.PoolClient, username: string, password: string): Promise<string> {
  await client.query("savepoint attempt");
  try {
    const { rows } = await client.query("select user_id from app_public.authenticate($1, $2)", [username, password]);
    return rows[0].user_id ? "token" : "wrong";
  } catch (error) {
    await client.query("rollback to savepoint attempt");
    return (error as { code: string }).code;
  }
}

describe("throttled sign-in", () => {
  it("blocks a username from one address after 5 failures, not from another address", async () => {
    await fromAddress("10.0.0.1", async (c) => {
      await c.query("select app_public.register('victim', 'victim-password')");
      const answers = [];
      for (let i = 0; i < 6; i++) answers.push(await attempt(c, "victim", `guess-${i}-guess`));
      expect(answers).toEqual(["wrong", "wrong", "wrong", "wrong", "wrong", "PRTHR"]);
      await c.query("savepoint throttled");
      const error = await errorOf(c.query("select app_public.authenticate('victim', 'victim-password')"));
      await c.query("rollback to savepoint throttled");
      expect(JSON.parse((error as unknown as { detail: string }).detail)).toEqual({ retryAfterSeconds: 1 });
      await c.query("select set_config('prompter.client_address', '10.0.0.2', true)");
      expect(await attempt(c, "victim", "victim-password")).toBe("token");
    });
  });

  it("backs off exponentially, at most 15 minutes, and forgets after an hour", async () => {
    await fromAddress("10.0.0.3", async (c) => {
      await c.query("reset role"); // the bookkeeping functions are the owner's
      const blockedFor = async () => Number((await c.query(
        "select extract(epoch from blocked_until - last_failed_at) as s from app_private.sign_in_failures where key = 'user:somebody from 10.0.0.3'")).rows[0].s);
      const fail = () => c.query("select app_private.record_sign_in_failure('somebody')");
      for (let i = 0; i < 5; i++) await fail();
      expect(Math.round(await blockedFor())).toBe(1);
      await fail();
      expect(Math.round(await blockedFor())).toBe(2);
      for (let i = 0; i < 20; i++) await fail();
      expect(Math.round(await blockedFor())).toBe(900);
      await c.query("update app_private.sign_in_failures set last_failed_at = last_failed_at - interval '61 minutes', blocked_until = now() where key like 'user:somebody%'");
      await fail();
      expect((await c.query("select failures from app_private.sign_in_failures where key = 'user:somebody from 10.0.0.3'")).rows[0].failures).toBe(1);
    });
  });

  it("the gateway turns PRTHR's DETAIL into a 429 with the seconds to wait", async () => {
    const error = await fromAddress("10.0.0.8", async (c) => {
      await c.query("reset role");
      for (let i = 0; i < 7; i++) await c.query("select app_private.record_sign_in_failure('waiting')");
      return errorOf(c.query("select app_private.assert_sign_in_allowed('waiting')"));
    });
    const visible = publicDatabaseError(error)!;
    // Blocked for 4 s after the 7th failure (1, 2, 4 s past the 5 free ones), less what the check took.
    expect(visible).toEqual({ status: 429, code: "PRTHR", message: `Too many failed sign-ins; try again in ${visible.retryAfterSeconds} seconds.`, retryAfterSeconds: expect.any(Number) });
    expect(visible.retryAfterSeconds).toBeGreaterThanOrEqual(3);
    expect(visible.retryAfterSeconds).toBeLessThanOrEqual(4);
  });

  it("one address guessing many usernames is blocked after 30 failures", async () => {
    await fromAddress("10.0.0.4", async (c) => {
      await c.query("reset role");
      for (let i = 0; i < 30; i++) await c.query("select app_private.record_sign_in_failure($1)", [`sprayed${i}`]);
      await c.query("set local role app_anonymous");
      expect(await attempt(c, "fresh-name", "any-password")).toBe("PRTHR");
    });
  });

  it("a successful sign-in clears the username's failures from its address, not the username's count from anywhere nor the address's", async () => {
    await fromAddress("10.0.0.5", async (c) => {
      await c.query("select app_public.register('walker', 'walker-password')");
      for (let i = 0; i < 3; i++) await attempt(c, "walker", `guess-${i}-guess`);
      expect(await attempt(c, "walker", "walker-password")).toBe("token");
      await c.query("reset role");
      const { rows } = await c.query("select key, failures from app_private.sign_in_failures where key like '%10.0.0.5%' or key like 'user:walker%' order by key");
      expect(rows).toEqual([{ key: "address:10.0.0.5", failures: 3 }, { key: "user:walker", failures: 3 }]);
    });
  });

  it("guesses from many addresses block those addresses, never the owner at an address that has not failed", async () => {
    await fromAddress("10.1.0.0", async (c) => {
      await c.query("select app_public.register('owner', 'owners-password')");
      const guessFrom = async (address: string, password = "wrong-guess") => {
        await c.query("select set_config('prompter.client_address', $1, true)", [address]);
        return attempt(c, "owner", password);
      };
      // One guess from each of 55 addresses: past the username's 50 free failures from anywhere.
      const answers = [];
      for (let i = 1; i <= 55; i++) answers.push(await guessFrom(`10.1.0.${i}`));
      expect(answers).toEqual(Array(55).fill("wrong"));
      // An address that has guessed is blocked now, even with the right password...
      expect(await guessFrom("10.1.0.3", "owners-password")).toBe("PRTHR");
      // ... and a new one may try once: its first failure blocks it too.
      expect(await guessFrom("10.1.0.99")).toBe("wrong");
      expect(await guessFrom("10.1.0.99")).toBe("PRTHR");
      expect(await guessFrom("10.1.1.1", "owners-password")).toBe("token");
      // The owner signing in does not give the guessers a fresh allowance.
      expect(await guessFrom("10.1.0.7")).toBe("PRTHR");
    });
  });

  it("an operator's password reset forgets the username's failures from every address", async () => {
    await fromAddress("10.2.0.1", async (c) => {
      await c.query("select app_public.register('resetme', 'resetme-password')");
      await c.query("reset role");
      // Blocked for half a minute from here (10 failures: fewer than the address's 30 free ones).
      for (let i = 0; i < 10; i++) await c.query("select app_private.record_sign_in_failure('resetme')");
      await c.query("set local role app_anonymous");
      expect(await attempt(c, "resetme", "resetme-password")).toBe("PRTHR");
      await c.query("reset role");
      // As `npx prompter user reset-password` runs it: from no client address.
      await c.query("select set_config('prompter.client_address', '', true)");
      await c.query("select app_private.reset_password('resetme', 'another-password')");
      await c.query("select set_config('prompter.client_address', '10.2.0.1', true), set_config('role', 'app_anonymous', true)");
      expect(await attempt(c, "resetme", "another-password")).toBe("token");
    });
  });
});

describe("passwords and tokens", () => {
  it("change_password needs the current password, returns a token of the new generation, and revokes the old", async () => {
    await fromAddress("10.0.0.6", async (c) => {
      const { user_id: userId } = (await c.query("select user_id from app_public.register('pat', 'pats-password')")).rows[0];
      await c.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [userId]);
      expect((await c.query("select user_id from app_public.change_password('wrong-password', 'new-password')")).rows[0].user_id).toBeNull();
      await c.query("savepoint weak");
      expect((await errorOf(c.query("select app_public.change_password('pats-password', 'short')"))).code).toBe("PRWKP");
      await c.query("rollback to savepoint weak");
      const token = (await c.query("select user_id, token_generation from app_public.change_password('pats-password', 'new-password')")).rows[0];
      expect(token).toEqual({ user_id: userId, token_generation: 1 });
      await c.query("reset role");
      expect((await c.query("select token_generation from app_public.users where id = $1", [userId])).rows[0].token_generation).toBe(1);
      expect((await c.query("select app_private.password_matches($1, 'new-password') as ok", [userId])).rows[0].ok).toBe(true);
    });
  });

  it("register is refused unless the gateway says registration is open", async () => {
    const closed = await actAs(db.pool, { role: "app_anonymous" }, (c) => errorOf(c.query("select app_public.register('nora', 'long-enough')")));
    expect(closed).toMatchObject({ code: "PRREG", message: expect.stringContaining("operator") });
  });
});

describe("npx prompter user", () => {
  const run = (args: string[], input?: string) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(path.resolve("node_modules/.bin/node"), ["src/cli.ts", "user", ...args],
      { env: { ...process.env, DATABASE_URL: db.url } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }));
    child.stdin!.end(input ?? "");
  });
  const row = async (username: string) =>
    (await db.pool.query("select is_admin, is_disabled, token_generation from app_public.users where username = $1", [username])).rows[0];

  // Each command migrates and connects, a few seconds each on a busy machine.
  it("adds, lists, promotes, demotes, disables, enables, resets and removes", { timeout: 180_000 }, async () => {
    expect((await run(["add", "olga"], "olgas-password\n")).code).toBe(0);
    expect(await row("olga")).toEqual({ is_admin: false, is_disabled: false, token_generation: 0 });
    await run(["promote", "OLGA"]);
    expect((await row("olga")).is_admin).toBe(true);
    expect((await run(["list"])).stdout).toMatch(/\bolga\s+admin\s+enabled\s+password\b/);
    await run(["demote", "olga"]);
    await run(["disable", "olga"]);
    expect(await row("olga")).toEqual({ is_admin: false, is_disabled: true, token_generation: 1 });
    await run(["enable", "olga"]);
    expect(await row("olga")).toEqual({ is_admin: false, is_disabled: false, token_generation: 1 });
    expect((await run(["set-password", "olga"], "olgas-new-password\n")).code).toBe(0);
    expect((await row("olga")).token_generation).toBe(2);
    const signIn = await fromAddress("10.0.0.7", (c) => attempt(c, "olga", "olgas-new-password"));
    expect(signIn).toBe("token");
    expect((await run(["remove", "olga"])).code).toBe(0);
    expect(await row("olga")).toBeUndefined();
  });

  it("names an unknown user, and rejects a bad password, changing nothing", { timeout: 60_000 }, async () => {
    expect(await run(["disable", "nobody-here"])).toMatchObject({ code: 2, stderr: expect.stringContaining('No user "nobody-here"') });
    const user = await createUser(db.pool, { username: "quentin" });
    expect(await run(["set-password", "quentin"], "short\n")).toMatchObject({ code: 2, stderr: expect.stringContaining("at least 8") });
    expect(await generationOf(user)).toBe(0);
  });
});
