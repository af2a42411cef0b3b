import autocannon from "autocannon";
import type { ChildProcess } from "node:child_process";
import pg from "pg";
import { api, base, log, round, rssMb, tokenFor } from "./harness.ts";

/** The heaviest read the GraphQL limits let through: as many full pages as the cost limit allows. */
export const HEAVY_QUERY = `{ ${Array.from({ length: 5 }, (_, i) => `a${i}: allPromptVersions(first: 1000, offset: ${i * 1000}) { nodes { text explanation } }`).join(" ")} }`;

/**
 * User B's experience with and without user A's attack: A's heaviest allowed
 * GraphQL reads in parallel, 50 clients signing in with a wrong password without
 * pause, and a SQL login of A
 * holding B's and the service's advisory keys while running a query that
 * would last 10 minutes (its statement timeout is 5 s; the worker enforces it).
 */
export async function benchNoisyNeighbours(pool: pg.Pool, url: string, server: ChildProcess, attackerId: string) {
  // A user of its own: the others have used up their export rate limit in the pickup benchmark.
  const { rows: [{ id: victimId }] } = await pool.query<{ id: string }>("insert into app_public.users (username) values ('bench_victim') returning id");
  await pool.query("select app_private.generate_demo($1, 100)", [victimId]);
  const victim = tokenFor("app_user", victimId);
  const attacker = tokenFor("app_user", attackerId);
  const measureVictim = async () => {
    // 3 clients, plus B's export request: within B's CALLER_MAX_CONCURRENT (4).
    const result = await autocannon({ url: `${base}/api/agents/effectiveness`, connections: 3, duration: 8, headers: { authorization: `Bearer ${victim}` } });
    const statuses = Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([status, stats]) => [status, (stats as { count: number }).count]));
    return { p50_ms: result.latency.p50, p99_ms: result.latency.p99, requests_per_s: round(result.requests.average, 0), non_2xx: result.non2xx, statuses };
  };
  log("noisy neighbours: baseline");
  const baseline = await measureVictim();

  log("noisy neighbours: under attack");
  const login = `bench_noisy_${process.pid}`;
  const { rows: [added] } = await pool.query(
    "select generated_password from app_private.add_sql_login($1, (select username from app_public.users where id = $2), statement_timeout => '5s')",
    [login, attackerId]);
  const readerUrl = new URL(url);
  readerUrl.username = login;
  readerUrl.password = added.generated_password;
  const reader = new pg.Client({ connectionString: readerUrl.toString() });
  reader.on("error", () => {});
  let stop = false;
  let peakRss = 0;
  const readyz = { probes: 0, failed: 0 };
  try {
    await reader.connect();
    await reader.query(
      `select pg_advisory_lock(hashtextextended('prompter.exports.rate', $1::bigint)), pg_advisory_lock(hashtextextended('prompter.migrate', 0)),
              pg_advisory_lock(4727445306447283)`, [victimId]);
    await reader.query("set statement_timeout = 0");
    const longQuery = reader.query("select pg_sleep(600)").then(() => "finished", (error) => error.code === "57014" ? "cancelled" : error.message);
    const refusals: Record<string, number> = {};
    const heavy = Array.from({ length: 8 }, async () => {
      let refused = 0;
      let answered = 0;
      let failed = 0; // connection errors, such as a kept-alive socket the server closed meanwhile
      while (!stop) {
        // Refused: a GraphQL error, or the gateway's 429 (too many of A's requests in flight).
        const body = await fetch(`${base}/graphql`, { method: "POST", headers: { authorization: `Bearer ${attacker}`, "content-type": "application/json" }, body: JSON.stringify({ query: HEAVY_QUERY }) })
          .then((response) => response.json(), () => undefined);
        if (!body) failed++;
        else if (body.errors || body.error) {
          refused++;
          const code = body.errors?.[0]?.extensions?.code ?? body.error?.code;
          refusals[code] = (refusals[code] ?? 0) + 1;
        }
        else answered++;
      }
      return { refused, answered, failed };
    });
    // 50 clients guessing passwords without pause, each trying again as soon as it is answered.
    const signIns = Promise.all(Array.from({ length: 50 }, async () => {
      const answers: Record<string, number> = {};
      while (!stop) {
        const body = await fetch(`${base}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ query: `mutation { authenticate(input: { username: "bench_1", password: "not-the-password" }) { result } }` }),
        }).then((r) => r.json(), () => undefined);
        const code = body ? body.errors?.[0]?.extensions?.code ?? "signed in" : "connection error";
        answers[code] = (answers[code] ?? 0) + 1;
      }
      return answers;
    })).then((all) => {
      const answers: Record<string, number> = {};
      for (const one of all) for (const [code, count] of Object.entries(one)) answers[code] = (answers[code] ?? 0) + count;
      return answers;
    });
    const sampling = (async () => {
      while (!stop) {
        peakRss = Math.max(peakRss, await rssMb(server.pid!));
        readyz.probes++;
        if (!(await fetch(`${base}/readyz`).then((r) => r.ok, () => false))) readyz.failed++;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    const [attack, victimExport] = await Promise.all([
      measureVictim(),
      api("/api/storage/export-multi-agent?wait=true", victim, { method: "POST" }).then((body) => ({ status: body.export.status, records: body.records })),
    ]);
    stop = true;
    const attackerQueries = { ...(await Promise.all(heavy)).reduce((sum, q) => ({ refused: sum.refused + q.refused, answered: sum.answered + q.answered, failed: sum.failed + q.failed })), refusals };
    const wrongSignIns = await signIns;
    await sampling;
    return {
      scale_prompts_of_attacker: Number((await pool.query("select count(*) from app_public.prompts where user_id = $1", [attackerId])).rows[0].count),
      baseline, attack, victim_export: victimExport, readyz, gateway_peak_rss_mb: round(peakRss, 1),
      attacker_heavy_queries: attackerQueries, wrong_sign_ins: wrongSignIns, reader_long_query: await longQuery,
    };
  } finally {
    stop = true;
    await reader.end().catch(() => {});
    await pool.query("call app_private.remove_sql_login($1, null)", [login]);
  }
}
