import http from "node:http";
import { base, median, round, tokenFor } from "./harness.ts";
import type { PreviousRelease } from "./previous-release.ts";

/**
 * p50 of GET pathname with 10 keep-alive clients for `seconds`, to the
 * microsecond (autocannon rounds to whole milliseconds, too coarse for a 1 ms budget).
 */
export async function p50Ms(origin: string, pathname: string, token: string, seconds: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
  const latencies: number[] = [];
  const deadline = Date.now() + seconds * 1000;
  const get = () => new Promise<void>((resolve, reject) => {
    http.get(origin + pathname, { agent, headers: { authorization: `Bearer ${token}` } }, (response) => {
      response.resume();
      response.on("end", () => (response.statusCode === 200 ? resolve() : reject(new Error(`${pathname}: ${response.statusCode}`))));
    }).on("error", reject);
  });
  await Promise.all(Array.from({ length: 10 }, async () => {
    while (Date.now() < deadline) {
      const started = performance.now();
      await get();
      latencies.push(performance.now() - started);
    }
  }));
  agent.destroy();
  return round(median(latencies), 3);
}

/**
 * agent_effectiveness through REST here and on the previous release, same data,
 * the two gateways taking turns (3 rounds of 4 s each), for a user and an admin.
 */
export async function benchSessionCost(previous: PreviousRelease, userId: string, adminId: string) {
  const pathname = "/api/agents/effectiveness";
  const p50s = { user: [] as number[], previous_user: [] as number[], admin: [] as number[], previous_admin: [] as number[] };
  for (let i = 0; i < 3; i++) {
    p50s.user.push(await p50Ms(base, pathname, tokenFor("app_user", userId), 4));
    p50s.previous_user.push(await p50Ms(previous.base, pathname, tokenFor("app_user", previous.dataUser), 4));
    p50s.admin.push(await p50Ms(base, pathname, tokenFor("app_admin", adminId), 4));
    p50s.previous_admin.push(await p50Ms(previous.base, pathname, tokenFor("app_admin", previous.adminId), 4));
  }
  const [user, previousUser, admin, previousAdmin] = [p50s.user, p50s.previous_user, p50s.admin, p50s.previous_admin].map(median);
  return {
    user_p50_ms: user, previous_user_p50_ms: previousUser, user_extra_ms: round(user - previousUser, 3),
    admin_p50_ms: admin, previous_admin_p50_ms: previousAdmin, admin_extra_ms: round(admin - previousAdmin, 3),
  };
}
