// GraphQL clients follow the GraphQL-over-HTTP spec: graphql-http's server
// audit (the spec's own suite) runs against a started gateway, in development
// and in production mode.
import { auditServer } from "graphql-http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestDatabase } from "../support/db.ts";
import { startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
const servers: RunningServer[] = [];
afterAll(() => Promise.all(servers.map((server) => server.stop())));

describe.each(["development", "production"])("in %s mode", (mode) => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ databaseUrl: db.url, env: { NODE_ENV: mode, METRICS_TOKEN: "audit-metrics-token-0123456789" } });
    servers.push(server);
  });

  it("passes graphql-http's server audit with no error and no warning", async () => {
    const results = await auditServer({ url: `${server.baseUrl}/graphql` });
    const failed = await Promise.all(results.filter((result) => result.status !== "ok").map(async (result) => ({
      status: result.status,
      name: result.name,
      reason: result.reason,
      response: { status: result.response.status, contentType: result.response.headers.get("content-type"), body: await result.response.text() },
    })));
    expect(failed).toEqual([]);
    expect(results.length).toBeGreaterThan(50);
  }, 60_000);

  it("runs queries over GET, refuses mutations there, and its Allow lists what it supports", async () => {
    const get = (query: string) => fetch(`${server.baseUrl}/graphql?${new URLSearchParams({ query })}`, { headers: { accept: "application/json" } });
    const query = await get("{ __typename }");
    expect({ status: query.status, body: await query.json() }).toEqual({ status: 200, body: { data: { __typename: "Query" } } });
    const mutation = await get(`mutation { authenticate(input: { username: "x", password: "y" }) { result } }`);
    expect({ status: mutation.status, allow: mutation.headers.get("allow") }).toEqual({ status: 405, allow: "GET, POST" });
    const other = await fetch(`${server.baseUrl}/graphql`, { method: "PUT" });
    expect({ status: other.status, allow: other.headers.get("allow") }).toEqual({ status: 405, allow: "GET, POST" });
  });
});
