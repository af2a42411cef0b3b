import pg from "pg";
import { quantile, waitFor } from "./harness.ts";

/** request_export commit -> the task marks the export running, one job at a time (20 users x 10: the rate limit). */
export async function benchPickup(pool: pg.Pool, userIds: string[]) {
  const pickups: number[] = [];
  for (let i = 0; i < 200; i++) {
    const userId = userIds[i % userIds.length];
    const client = await pool.connect();
    let id: string;
    try {
      await client.query("begin");
      await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [userId]);
      id = (await client.query("select id from app_public.request_export('agent_effectiveness')")).rows[0].id;
      await client.query("commit");
    } finally {
      client.release();
    }
    const committed = Date.now();
    let startedAt: Date | null = null;
    await waitFor(async () => {
      startedAt = (await pool.query("select started_at from app_public.exports where id = $1", [id])).rows[0].started_at;
      return startedAt !== null;
    }, `export ${id} to start`, 2);
    pickups.push(startedAt!.getTime() - committed);
  }
  pickups.sort((a, b) => a - b);
  return { jobs: pickups.length, p50_ms: quantile(pickups, 0.5), p99_ms: quantile(pickups, 0.99) };
}
