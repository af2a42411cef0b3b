import autocannon from "autocannon";
import pg from "pg";
import { base, quantile, round, tokenFor } from "./harness.ts";

export async function cannon(pathname: string, token: string) {
  const result = await autocannon({ url: base + pathname, connections: 10, duration: 5, headers: { authorization: `Bearer ${token}` } });
  if (result.non2xx) throw new Error(`${pathname}: ${result.non2xx} non-2xx responses`);
  return { p50_ms: result.latency.p50, p99_ms: result.latency.p99, requests_per_s: round(result.requests.average, 0) };
}

/** Latency of one SQL statement run as `role` by 10 concurrent clients for 5 s. */
export async function sqlLoad(url: string, role: string, userId: string, sql: string, seconds = 5) {
  const latencies: number[] = [];
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(Array.from({ length: 10 }, async () => {
    const client = new pg.Client({ connectionString: url, options: `-c role=${role} -c jwt.claims.user_id=${userId}` });
    await client.connect();
    while (Date.now() < deadline) {
      const started = performance.now();
      await client.query(sql);
      latencies.push(performance.now() - started);
    }
    await client.end();
  }));
  latencies.sort((a, b) => a - b);
  return { p50_ms: round(quantile(latencies, 0.5), 3), p99_ms: round(quantile(latencies, 0.99), 3), queries_per_s: round(latencies.length / seconds, 0) };
}

export const GROUP_BY_BASELINE = `select v.source as agent, count(*) as total, count(b.prompt_id) as wins,
  avg(s.total) as avg_score from app_public.prompt_versions v
  left join app_public.best_heads b on b.prompt_version_id = v.id
  left join app_public.judge_scores s on s.prompt_version_id = v.id group by v.source`;

export async function benchEffectiveness(url: string, userId: string, adminId: string) {
  const view = "select * from app_public.agent_effectiveness";
  return {
    rest_user: await cannon("/api/agents/effectiveness", tokenFor("app_user", userId)),
    rest_admin: await cannon("/api/agents/effectiveness", tokenFor("app_admin", adminId)),
    sql_user: await sqlLoad(url, "app_user", userId, view),
    sql_admin: await sqlLoad(url, "app_admin", adminId, view),
    group_by_baseline_admin: await sqlLoad(url, "app_admin", adminId, GROUP_BY_BASELINE, 3),
  };
}
