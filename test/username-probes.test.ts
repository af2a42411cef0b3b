// Whether a username is taken is not an unthrottled oracle: a user renames
// themselves only through change_username, which answers false for a taken
// name and, after 5 such answers, refuses with PRTHR (the backoff of sign-in
// guesses) whatever the name; UPDATE of users.username is not granted, so its
// unique violation (23505) cannot be asked for at full speed instead.
import { beforeAll, describe, expect, it } from "vitest";
import { actAs, createUser, errorOf, useTestDatabase } from "./support/db.ts";

const db = useTestDatabase();
let prober: string;
let other: string;
const TAKEN = "Taken_Name";

/** change_username as the user, committed (as the gateway's request would be): its answer or error code. */
async function rename(userId: string, username: string, address = ""): Promise<boolean | string> {
  const client = await db.pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true), set_config('prompter.client_address', $2, true)",
      [userId, address]);
    const outcome = await client.query("select app_public.change_username($1) as renamed", [username])
      .then((result) => result.rows[0].renamed as boolean, (error) => error.code as string);
    await client.query(typeof outcome === "boolean" ? "commit" : "rollback");
    return outcome;
  } finally {
    client.release();
  }
}

const usernameOf = async (userId: string) =>
  (await db.pool.query("select username from app_public.users where id = $1", [userId])).rows[0].username;

beforeAll(async () => {
  await createUser(db.pool, { username: TAKEN });
  prober = await createUser(db.pool);
  other = await createUser(db.pool);
});

describe("renaming to find out which usernames exist", () => {
  it("cannot go through UPDATE, whose unique violation would answer at full speed", async () => {
    const error = await actAs(db.pool, { role: "app_user", userId: prober }, (client) =>
      errorOf(client.query("update app_public.users set username = $1 where id = $2", [TAKEN, prober])));
    expect(error.code).toBe("42501");
  });

  it("answers false for a taken name five times, then PRTHR for any name, and renames nothing meanwhile", async () => {
    const before = await usernameOf(prober);
    const answers: (boolean | string)[] = [];
    for (let i = 0; i < 6; i++) answers.push(await rename(prober, i % 2 ? TAKEN : TAKEN.toLowerCase()));
    expect(answers).toEqual([false, false, false, false, false, "PRTHR"]);
    // Blocked, a free name gets the same answer as a taken one.
    expect(await rename(prober, "surely_free_name")).toBe("PRTHR");
    expect(await usernameOf(prober)).toBe(before);
    // Another user is not held back by the prober.
    expect(await rename(other, "renamed_other")).toBe(true);
    expect(await usernameOf(other)).toBe("renamed_other");
  });

  it("is throttled per client address too, across the users it signs in as", async () => {
    const address = "203.0.113.9";
    const users = await Promise.all(Array.from({ length: 8 }, () => createUser(db.pool)));
    const answers: (boolean | string)[] = [];
    // Four probes per user stay under the user's own limit; the address reaches its 30.
    for (const user of users) for (let i = 0; i < 4; i++) answers.push(await rename(user, TAKEN, address));
    expect(answers.slice(0, 30)).toEqual(Array(30).fill(false));
    expect(answers.slice(30)).toEqual(["PRTHR", "PRTHR"]);
    expect(await rename(other, "from_elsewhere", "198.51.100.7")).toBe(true);
  });

  it("refuses a malformed name with PRUSN, and anonymous callers", async () => {
    expect(await rename(other, "1bad")).toBe("PRUSN");
    const anonymous = await actAs(db.pool, { role: "app_anonymous" }, (client) =>
      errorOf(client.query("select app_public.change_username('whoever')")));
    expect(anonymous.code).toBe("42501");
  });
});
