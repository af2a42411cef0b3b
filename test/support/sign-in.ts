// Sign-in as the gateway runs it in SQL, for the tests of app_public.authenticate
// and its throttling: an anonymous client at an address, inside a transaction
// that is rolled back, where the owner can also step in (an operator's command,
// or the clock moved by shifting recorded times).
import type pg from "pg";
import { actAs } from "./db.ts";

/** Runs `work` as the gateway's anonymous client at `address` (registration open), rolled back. */
export function fromAddress<T>(pool: pg.Pool, address: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return actAs(pool, { role: "app_anonymous" }, async (client) => {
    await client.query("select set_config('prompter.client_address', $1, true), set_config('prompter.allow_registration', 'on', true)", [address]);
    return work(client);
  });
}

export type SignInOutcome =
  | { outcome: "token"; role: string; userId: string; generation: number }
  | { outcome: "wrong" }
  /** Refused with this SQLSTATE; PRTHR says how long to wait. */
  | { outcome: string; retryAfterSeconds?: number };

/** One app_public.authenticate; a savepoint keeps the transaction usable after its error. */
export async function signInAttempt(client: pg.PoolClient, username: string, password: string): Promise<SignInOutcome> {
  await client.query("savepoint sign_in_attempt");
  try {
    const { rows: [token] } = await client.query("select * from app_public.authenticate($1, $2)", [username, password]);
    if (token.user_id === null) return { outcome: "wrong" };
    return { outcome: "token", role: token.role, userId: String(token.user_id), generation: token.token_generation };
  } catch (error) {
    await client.query("rollback to savepoint sign_in_attempt");
    const { code, detail } = error as { code: string; detail?: string };
    return code === "PRTHR" ? { outcome: code, retryAfterSeconds: JSON.parse(detail!).retryAfterSeconds } : { outcome: code };
  }
}

/** Runs `work` as the owner inside the anonymous client's transaction, then goes back to being that client. */
export async function asOwner<T>(client: pg.PoolClient, work: () => Promise<T>): Promise<T> {
  await client.query("reset role");
  try {
    return await work();
  } finally {
    await client.query("set local role app_anonymous");
  }
}
