// Sign-in throttling (sql/functions/112_sign_in_throttle.sql) over time and
// spellings: a username is one key whatever its case; failures count until an
// hour passes after the last one, so failures spread out (each within the hour
// of the one before) still end in a block; and each failure past the free ones
// blocks twice as long as the one before, also when every block was waited out.
// Time is moved by shifting the recorded times back, inside a rolled-back transaction.
import { describe, expect, it } from "vitest";
import type pg from "pg";
import { useTestDatabase } from "../support/db.ts";
import { asOwner, fromAddress as fromAddressIn, signInAttempt, type SignInOutcome } from "../support/sign-in.ts";

const db = useTestDatabase();
const fromAddress = <T>(address: string, work: (client: pg.PoolClient) => Promise<T>) => fromAddressIn(db.pool, address, work);

/** "token", "wrong", the code of a refusal, or "PRTHR <seconds to wait>". */
async function attempt(client: pg.PoolClient, username: string, password: string): Promise<string> {
  const answer: SignInOutcome = await signInAttempt(client, username, password);
  return "retryAfterSeconds" in answer ? `${answer.outcome} ${answer.retryAfterSeconds}` : answer.outcome;
}

/** As if `interval` had passed since the username's failures. */
const timePasses = (client: pg.PoolClient, username: string, interval: string) => asOwner(client, () => client.query(
  `update app_private.sign_in_failures set last_failed_at = last_failed_at - $2::interval, blocked_until = blocked_until - $2::interval
    where key like 'user:' || lower($1) || '%'`, [username, interval]));

describe("throttling keys", () => {
  it("counts a username's failures whatever its case, and blocks its every spelling", async () => {
    await fromAddress("10.2.0.1", async (c) => {
      await c.query("select app_public.register('Casey', 'caseys-password')");
      const spellings = ["casey", "CASEY", "Casey", "cAsEy", "caseY"];
      const answers = [];
      for (const spelling of spellings) answers.push(await attempt(c, spelling, `not-caseys-${spelling}`));
      expect(answers).toEqual(Array(5).fill("wrong"));
      for (const spelling of spellings) expect(await attempt(c, spelling, "caseys-password")).toMatch(/^PRTHR /);
      await c.query("reset role");
      const { rows } = await c.query("select key, failures from app_private.sign_in_failures where key ilike '%casey%' order by key");
      expect(rows).toEqual([{ key: "user:casey", failures: 5 }, { key: "user:casey from 10.2.0.1", failures: 5 }]);
    });
  });

  it("a sign-in under another case forgets the failures recorded under any", async () => {
    await fromAddress("10.2.0.2", async (c) => {
      await c.query("select app_public.register('dana', 'danas-password')");
      for (let i = 0; i < 4; i++) expect(await attempt(c, i % 2 ? "DANA" : "dana", `guess-${i}-guess`)).toBe("wrong");
      expect(await attempt(c, "Dana", "danas-password")).toBe("token");
      for (let i = 0; i < 4; i++) expect(await attempt(c, "dAnA", `guess-${i}-again`)).toBe("wrong");
      expect(await attempt(c, "dana", "danas-password")).toBe("token");
    });
  });
});

describe("throttling windows", () => {
  it("failures 50 minutes apart still add up to a block: the hour runs from the last failure", async () => {
    await fromAddress("10.2.0.3", async (c) => {
      await c.query("select app_public.register('ellis', 'ellis-password')");
      for (let i = 0; i < 5; i++) {
        if (i > 0) await timePasses(c, "ellis", "50 minutes");
        expect(await attempt(c, "ellis", `slow-guess-${i}`)).toBe("wrong");
      }
      // Five failures over more than three hours, none more than an hour after the one before: the fifth blocks.
      expect(await attempt(c, "ellis", "ellis-password")).toMatch(/^PRTHR /);
    });
  });

  it("failures more than an hour apart start afresh", async () => {
    await fromAddress("10.2.0.4", async (c) => {
      await c.query("select app_public.register('fran', 'frans-password')");
      for (let i = 0; i < 8; i++) {
        expect(await attempt(c, "fran", `rare-guess-${i}`)).toBe("wrong");
        await timePasses(c, "fran", "61 minutes");
      }
      expect(await attempt(c, "fran", "frans-password")).toBe("token");
    });
  });

  it("each failure past the free ones blocks twice as long as the last, even when every block was waited out", async () => {
    await fromAddress("10.2.0.5", async (c) => {
      await c.query("select app_public.register('gale', 'gales-password')");
      for (let i = 0; i < 5; i++) expect(await attempt(c, "gale", `guess-${i}-guess`)).toBe("wrong");
      const waits = [];
      for (let i = 0; i < 6; i++) {
        const blocked = await attempt(c, "gale", "gales-password");
        waits.push(blocked);
        // Wait the block out (and no more), then guess wrong once more.
        await timePasses(c, "gale", `${blocked.split(" ")[1]} seconds`);
        expect(await attempt(c, "gale", `late-guess-${i}`)).toBe("wrong");
      }
      expect(waits).toEqual(["PRTHR 1", "PRTHR 2", "PRTHR 4", "PRTHR 8", "PRTHR 16", "PRTHR 32"]);
    });
  });
});
