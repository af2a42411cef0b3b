// Work done as an API role the way the gateway does it: in a transaction of its
// own, as the actor, committed (so other sessions and the worker see it), or
// rolled back if it fails. actAs rolls back whatever `work` left uncommitted.
import type pg from "pg";
import { actAs, type Actor } from "./db.ts";

export function commitAs<T>(pool: pg.Pool, actor: Actor, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return actAs(pool, actor, async (client) => {
    const result = await work(client);
    await client.query("commit");
    return result;
  });
}
