// The analytics over REST and GraphQL: each answer (checked against the OpenAPI
// document by callRest) against a recomputation from the rows, what each caller
// sees, and the codes of bad ranges.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { callRest } from "../support/openapi.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";
import { AGENTS, effectiveness, headToHead, ratings, readRows, utcDay, type Rows } from "../analytics/oracle.ts";

const db = useTestDatabase();
let server: RunningServer;
const users: Record<"a" | "b" | "admin", { id: string; token: string }> = {} as never;
let rows: Rows;
const today = utcDay(new Date());
const days = (n: number) => utcDay(new Date(Date.now() + n * 86_400_000));
const call = (url: string, token?: string) => callRest(server.baseUrl, "GET", url, { token });

beforeAll(async () => {
  for (const name of ["a", "b", "admin"] as const) {
    const id = await createUser(db.pool, { admin: name === "admin" });
    users[name] = { id, token: signTestToken(id, { admin: name === "admin" }) };
  }
  await db.pool.query("select app_private.generate_demo($1, 12)", [users.a.id]);
  await db.pool.query("select app_private.generate_demo($1, 5)", [users.b.id]);
  // Some of a's prompts and versions are from earlier days.
  await db.pool.query("update app_public.prompts set created_at = now() - interval '3 days' where user_id = $1 and id % 3 = 0", [users.a.id]);
  await db.pool.query("update app_public.prompt_versions set created_at = now() - interval '3 days' where user_id = $1 and id % 4 = 0", [users.a.id]);
  rows = await readRows(db.pool as never);
  server = await startServer({ databaseUrl: db.url });
});
afterAll(() => server?.stop());

const scopes = () => [["a", new Set([users.a.id])], ["b", new Set([users.b.id])], ["admin", "all"]] as const;

describe("GET /api/agents/effectiveness?from=&to=", () => {
  it("answers each caller's figures of the versions created in the window, with Wilson intervals", async () => {
    for (const [name, scope] of scopes()) {
      for (const [from, to] of [[days(-3), today], [today, days(1)], [days(-7), days(1)]]) {
        const { status, body } = await call(`/api/agents/effectiveness?from=${from}&to=${to}`, users[name].token);
        expect(status).toBe(200);
        const want = effectiveness(rows, scope, from, to);
        expect(Object.keys(body.effectiveness)).toEqual(AGENTS);
        for (const agent of AGENTS) {
          for (const [figure, value] of Object.entries(want[agent])) expect(body.effectiveness[agent][figure], `${name} ${agent} ${figure}`).toBeCloseTo(value, 9);
        }
      }
    }
  });

  it("keeps the all-time answer without a range, with the win rate's interval beside it", async () => {
    const { body } = await call("/api/agents/effectiveness", users.b.token);
    expect(Object.keys(body.effectiveness.domain).sort()).toEqual(["avg_score", "total", "win_rate", "win_rate_lower", "win_rate_upper", "wins"]);
  });
});

describe("GET /api/agents/effectiveness/series, /head-to-head and /ratings", () => {
  it("answer a series whose buckets add up to the window", async () => {
    const { status, body } = await call(`/api/agents/effectiveness/series?bucket=day&from=${days(-6)}&to=${days(1)}`, users.a.token);
    expect(status).toBe(200);
    expect(body.series).toHaveLength(7 * AGENTS.length);
    const want = effectiveness(rows, new Set([users.a.id]), days(-6), days(1));
    for (const agent of AGENTS) {
      const mine = body.series.filter((p: { agent: string }) => p.agent === agent);
      expect(mine.reduce((sum: number, p: { total: number }) => sum + p.total, 0)).toBe(want[agent].total);
      expect(mine.reduce((sum: number, p: { wins: number }) => sum + p.wins, 0)).toBe(want[agent].wins);
    }
    expect(body.series.find((p: { bucket_start: string; total: number }) => p.bucket_start === days(-3) && p.total > 0)).toBeDefined();
  });

  it("answer each caller's head-to-head table and ratings, best first", async () => {
    for (const [name, scope] of scopes()) {
      const from = days(-7);
      const to = days(1);
      const pairs = await call(`/api/agents/head-to-head?from=${from}&to=${to}`, users[name].token);
      expect(pairs.status).toBe(200);
      expect(pairs.body.pairs).toEqual(headToHead(rows, scope, from, to));
      const rated = await call(`/api/agents/ratings?from=${from}&to=${to}`, users[name].token);
      const want = ratings(headToHead(rows, scope, from, to));
      expect(rated.body.ratings.map((r: { agent: string }) => r.agent).sort()).toEqual(want.map((r) => r.agent).sort());
      for (const rating of rated.body.ratings) {
        const expected = want.find((r) => r.agent === rating.agent)!;
        for (const field of ["rating", "lower", "upper"] as const) expect(rating[field]).toBeCloseTo(expected[field], 6);
      }
      const order = rated.body.ratings.map((r: { rating: number }) => r.rating);
      expect(order).toEqual([...order].sort((x, y) => y - x));
    }
  });

  it("refuses bad ranges, buckets and days with 400 and a code, and anonymous callers with 401", async () => {
    const cases: [string, string][] = [
      [`/api/agents/effectiveness?from=${today}&to=${days(-1)}`, "PARNG"],
      [`/api/agents/effectiveness?from=${today}`, "PARNG"],
      [`/api/agents/head-to-head?from=${today}&to=${days(-1)}`, "PARNG"],
      [`/api/agents/ratings?to=${today}`, "PARNG"],
      [`/api/agents/effectiveness/series?bucket=month&from=${days(-1)}&to=${today}`, "PABKT"],
      [`/api/agents/effectiveness/series?from=${days(-1)}&to=${today}`, "PABKT"],
      [`/api/agents/effectiveness/series?bucket=day&from=2020-01-01&to=${today}`, "PASPN"],
      [`/api/agents/ratings?from=2026-02-30&to=2026-03-01`, "BAD_PARAMETER"],
      [`/api/agents/head-to-head?from=${today}&to=${today}&agent=x`, "UNKNOWN_PARAMETER"],
    ];
    for (const [url, code] of cases) {
      const { status, body } = await call(url, users.a.token);
      expect({ url, status, code: body.error.code }).toEqual({ url, status: 400, code });
    }
    expect((await call(`/api/agents/ratings?from=${today}&to=${days(1)}`)).status).toBe(401);
  });
});

describe("GraphQL", () => {
  it("serves the four functions as query fields, with the same figures and codes", async () => {
    const from = days(-7);
    const to = days(1);
    const answer = await graphql(server, `query ($from: Date!, $to: Date!) {
      agentEffectivenessBetween(from: $from, to: $to) { nodes { agent wins total winRateLower winRateUpper } }
      agentEffectivenessSeries(bucket: "week", from: $from, to: $to) { nodes { bucketStart agent total } }
      agentHeadToHead(from: $from, to: $to) { nodes { agent opponent wins losses ties } }
      agentRatings(from: $from, to: $to) { nodes { agent rating lower upper } }
    }`, { from, to }, users.a.token);
    expect(answer.errors).toBeUndefined();
    const data = answer.data as Record<string, { nodes: Record<string, unknown>[] }>;
    const want = effectiveness(rows, new Set([users.a.id]), from, to);
    expect(data.agentEffectivenessBetween.nodes.map((n) => [n.agent, Number(n.wins), Number(n.total)]))
      .toEqual(AGENTS.map((agent) => [agent, want[agent].wins, want[agent].total]));
    expect(data.agentHeadToHead.nodes.map((n) => ({ ...n, wins: Number(n.wins), losses: Number(n.losses), ties: Number(n.ties) })))
      .toEqual(headToHead(rows, new Set([users.a.id]), from, to));
    expect(data.agentRatings.nodes.length).toBe(AGENTS.length);
    const refused = await graphql(server, `{ agentRatings(from: "2026-02-02", to: "2026-02-01") { nodes { agent } } }`, {}, users.a.token);
    expect(refused.errors?.[0]).toMatchObject({ extensions: { code: "PARNG" } });
  });
});
