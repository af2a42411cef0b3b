// The REST endpoints: their exact shapes, what each caller may see (RLS as the
// caller), export waiting, and the error codes for bad input (downloads:
// rest-downloads.test.ts).
import { describe, expect, it } from "vitest";
import { wilson } from "../analytics/oracle.ts";
import { graphql as graphqlAs } from "../support/server.ts";
import { useRestGateways } from "./rest-gateways.ts";

const { db, gateways, users, call, postJson, recordOutcome, exportCreatedBy, queueExport, exportCount } = useRestGateways();

describe("GET /api/agents/effectiveness", () => {
  /** The figures, the win rate's 95% Wilson interval recomputed in TypeScript (to 12 places: floating point). */
  const figures = (wins: number, total: number, avg_score: number) => {
    const [lower, upper] = wilson(wins, total);
    return {
      wins, total, win_rate: total ? wins / total : 0, avg_score,
      win_rate_lower: expect.closeTo(lower, 12), win_rate_upper: expect.closeTo(upper, 12),
    };
  };

  it("answers the caller's own figures in the seed's shape, each win rate with its interval", async () => {
    const answer = await call("GET", "/api/agents/effectiveness", users.a.token);
    expect(answer).toMatchObject({ status: 200, body: { success: true } });
    expect(answer.body.effectiveness).toEqual({
      syntax: figures(1, 2, 30),
      structure: figures(1, 2, 37.5),
      domain: figures(0, 1, 0),
    });
    // No versions: the interval is all of [0, 1].
    const b = (await call("GET", "/api/agents/effectiveness", users.b.token)).body.effectiveness;
    expect(b).toEqual({ syntax: figures(0, 0, 0), structure: figures(0, 0, 0), domain: figures(1, 1, 50) });
    expect(b.syntax).toMatchObject({ win_rate_lower: 0, win_rate_upper: 1 });
  });

  it("gives an admin everyone's figures", async () => {
    const { body } = await call("GET", "/api/agents/effectiveness", users.admin.token);
    expect(body.effectiveness.domain).toEqual(figures(1, 2, 50));
  });
});

const EXPORT_SHAPE = {
  id: expect.any(Number),
  user_id: expect.any(Number),
  requested_by: expect.any(String),
  kind: expect.any(String),
  format: "csv",
  options: { gzip: expect.any(Boolean), excel: expect.any(Boolean) },
  filters: {},
  status: expect.any(String),
  is_global: expect.any(Boolean),
  requested_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
  started_at: null,
  finished_at: null,
  rows: null,
  bytes: null,
  sha256: null,
  file_name: null,
  attempts: 0,
  error: null,
  error_code: null,
  progress_rows: 0,
  stale: null,
  status_url: expect.stringMatching(/^\/api\/exports\/\d+$/),
  download_url: null,
};

describe("queueing exports", () => {
  it("POST /api/storage/export-multi-agent answers 202 with the queued export", async () => {
    const response = await postJson("/api/storage/export-multi-agent", users.a.token, '{"gzip": true}');
    const id = response.body.export_id;
    expect(response).toMatchObject({ status: 202 });
    expect(response.headers.get("location")).toBe(`/api/exports/${id}`);
    expect(response.body).toEqual({
      success: true,
      export_id: id,
      status: "queued",
      status_url: `/api/exports/${id}`,
      export: { ...EXPORT_SHAPE, id, user_id: Number(users.a.id), requested_by: users.a.name, kind: "multi_agent_log", options: { gzip: true, excel: false }, status: "queued" },
    });
  });

  it("POST /api/storage/export-all queues an export of every kind, with no body needed", async () => {
    const response = await call("POST", "/api/storage/export-all", users.a.token);
    expect(response.status).toBe(202);
    expect(response.body.export).toMatchObject({ kind: "all", options: { gzip: false, excel: false } });
  });

  // The server's own paths are none of the client's business: the file's name in the export storage, and where to download it.
  it.each([
    ["export-multi-agent", (id: number) => `multi_agent_log-${id}.csv`],
    ["export-all", (id: number) => `all-${id}.zip`],
  ])("?wait=true on %s answers 200 with the file's name in the storage and its download URL once the export has succeeded", async (endpoint, fileName) => {
    const content = "request_id,original_prompt\n1,hello\n2,world\n";
    const { id, response: pending } = await exportCreatedBy(users.waiter.id,
      () => call("POST", `/api/storage/${endpoint}?wait=true`, users.waiter.token));
    await recordOutcome(id, { status: "running" });
    await recordOutcome(id, { status: "succeeded", content, fileName: fileName(id) });
    const response = await pending;
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({
      success: true,
      csv_path: fileName(id),
      download_url: `/api/exports/${id}/download`,
      records: 2,
      export_id: id,
      status: "succeeded",
      export: { status: "succeeded", rows: 2, download_url: `/api/exports/${id}/download`, stale: null },
    });
    expect(JSON.stringify(response.body)).not.toContain(gateways.server.exportDir);
    const download = await call("GET", response.body.download_url, users.waiter.token);
    expect(download.status).toBe(200);
  });

  it("?wait=true reports a failed export as EXPORT_FAILED", async () => {
    const { id, response: pending } = await exportCreatedBy(users.b.id,
      () => call("POST", "/api/storage/export-all?wait=true", users.b.token));
    await recordOutcome(id, { status: "failed", error: "The disk is full." });
    expect(await pending).toMatchObject({
      status: 500,
      body: { success: false, error: { code: "EXPORT_FAILED", message: "The disk is full." }, status: "failed" },
    });
  });

  it("?wait=true gives up after EXPORT_WAIT_SECONDS and answers 202 with the export still queued", async () => {
    const response = await call("POST", "/api/storage/export-all?wait=true", users.admin.token, { on: gateways.impatient });
    expect(response).toMatchObject({ status: 202, body: { success: true, status: "queued", export: { is_global: true } } });
  });

  it("limits a user to 10 exports a minute (429 PRRTL), saying in Retry-After when the oldest leaves the minute", async () => {
    for (let i = 0; i < 10; i++) expect((await call("POST", "/api/storage/export-all", users.limited.token)).status).toBe(202);
    const refused = await call("POST", "/api/storage/export-all", users.limited.token);
    expect(refused).toMatchObject({
      status: 429, body: { success: false, error: { code: "PRRTL", message: expect.stringMatching(/at most 10 per minute/) } },
    });
    // Recomputed here: the oldest of the 10 requests leaves the one-minute window then.
    const { rows: [{ seconds }] } = await db.pool.query(
      "select extract(epoch from min(requested_at) + interval '1 minute' - clock_timestamp())::float8 as seconds from app_public.exports where user_id = $1",
      [users.limited.id]);
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(Math.abs(retryAfter - seconds)).toBeLessThanOrEqual(2);
    // GraphQL clients read the same in extensions.
    const { errors } = await graphqlAs(gateways.server, 'mutation { requestExport(input: {kind: "all"}) { result { rowId } } }', {}, users.limited.token);
    expect(errors).toEqual([expect.objectContaining({ extensions: { code: "PRRTL", retryAfterSeconds: expect.any(Number) } })]);
    expect(Math.abs(errors![0].extensions!.retryAfterSeconds! - retryAfter)).toBeLessThanOrEqual(1);
    expect(await exportCount(users.limited.id)).toBe(10);
  });
});

describe("reading exports", () => {
  it("GET /api/exports lists what the caller may see: their own, or everyone's for an admin", async () => {
    await queueExport(users.a);
    await queueExport(users.b);
    const own = async (user: { id: string; token: string }) => {
      const { body } = await call("GET", "/api/exports", user.token);
      return body.exports.map((e: { id: number; user_id: number }) => e.user_id);
    };
    expect(new Set(await own(users.a))).toEqual(new Set([Number(users.a.id)]));
    expect(new Set(await own(users.b))).toEqual(new Set([Number(users.b.id)]));
    const all = await call("GET", "/api/exports?limit=100", users.admin.token);
    expect(all.body.exports).toHaveLength((await db.pool.query("select count(*)::int as n from app_public.exports")).rows[0].n);
    const paged = await call("GET", "/api/exports?limit=1&offset=1", users.admin.token);
    expect(paged.body.exports).toEqual([all.body.exports[1]]);
  });

  it("GET /api/exports counts them all and links the next page until the last", async () => {
    const { rows: [{ n }] } = await db.pool.query("select count(*)::int as n from app_public.exports");
    const first = await call("GET", "/api/exports?limit=2", users.admin.token);
    expect(first.body).toMatchObject({ total: n, next_url: "/api/exports?limit=2&offset=2" });
    expect(first.headers.get("link")).toBe('</api/exports?limit=2&offset=2>; rel="next"');
    const seen: number[] = [];
    for (let url: string | null = "/api/exports?limit=2"; url; ) {
      const page = await call("GET", url, users.admin.token);
      seen.push(...page.body.exports.map((e: { id: number }) => e.id));
      url = page.body.next_url;
    }
    expect(seen).toHaveLength(n);
    expect(new Set(seen).size).toBe(n);
    const last = await call("GET", `/api/exports?limit=2&offset=${n - 1}`, users.admin.token);
    expect(last.body).toMatchObject({ total: n, next_url: null });
    expect(last.headers.get("link")).toBeNull();
  });

  it("shows an admin who requested each export", async () => {
    const id = await queueExport(users.b);
    const { body } = await call("GET", "/api/exports?limit=100", users.admin.token);
    expect(body.exports.find((e: { id: number }) => e.id === id)).toMatchObject({ user_id: Number(users.b.id), requested_by: users.b.name });
  });

  it("GET /api/exports/:id shows the export to its owner and an admin, 404 to anyone else", async () => {
    const id = await queueExport(users.a);
    const owner = await call("GET", `/api/exports/${id}`, users.a.token);
    expect(owner).toMatchObject({ status: 200, body: { success: true, export: { id, user_id: Number(users.a.id) } } });
    expect(Object.keys(owner.body.export).sort()).toEqual(Object.keys(EXPORT_SHAPE).sort());
    expect((await call("GET", `/api/exports/${id}`, users.admin.token)).status).toBe(200);
    expect(await call("GET", `/api/exports/${id}`, users.b.token)).toMatchObject({
      status: 404, body: { success: false, error: { code: "NOT_FOUND" } },
    });
  });
});

describe("bad requests", () => {
  const cases: [string, () => ReturnType<typeof call>, number, string][] = [
    ["no token", () => call("GET", "/api/exports"), 401, "SIGN_IN_REQUIRED"],
    ["malformed JSON", () => postJson("/api/storage/export-all", users.b.token, '{"gzip": tru'), 400, "BAD_JSON"],
    ["an unknown option", () => postJson("/api/storage/export-all", users.b.token, '{"gzip": true, "zip": "xml"}'), 400, "PROPT"],
    ["an option of the wrong type", () => postJson("/api/storage/export-all", users.b.token, '{"excel": "yes"}'), 400, "PROPT"],
    ["options that are not an object", () => postJson("/api/storage/export-all", users.b.token, "[true]"), 400, "PROPT"],
    ["a huge body", () => postJson("/api/storage/export-all", users.b.token, JSON.stringify({ gzip: true, pad: "x".repeat(200_000) })), 413, "BODY_TOO_LARGE"],
    ["a body that is not JSON", () => call("POST", "/api/storage/export-all", users.b.token, { body: "gzip=true", headers: { "content-type": "text/plain" } }), 415, "UNSUPPORTED_MEDIA_TYPE"],
    ["wait=maybe", () => call("POST", "/api/storage/export-all?wait=maybe", users.b.token), 400, "BAD_PARAMETER"],
    ["an unknown query parameter", () => call("GET", "/api/exports?sort=id", users.b.token), 400, "UNKNOWN_PARAMETER"],
    ["limit out of range", () => call("GET", "/api/exports?limit=1000", users.b.token), 400, "BAD_PARAMETER"],
    ["an id that is not a number", () => call("GET", "/api/exports/1%20or%201=1", users.b.token), 400, "BAD_PARAMETER"],
    ["an unknown endpoint", () => call("GET", "/api/nothing-here", users.b.token), 404, "NOT_FOUND"],
    ["a known path with a wrong method", () => call("DELETE", "/api/exports/3", users.b.token), 405, "METHOD_NOT_ALLOWED"],
  ];
  it.each(cases)("%s gets a clear error and changes nothing", async (_name, request, status, code) => {
    const before = await exportCount(users.b.id);
    const response = await request();
    expect(response).toMatchObject({ status, body: { success: false, error: { code, message: expect.any(String) } } });
    expect(Object.keys(response.body)).toEqual(["success", "error"]);
    expect(await exportCount(users.b.id)).toBe(before);
  });
});

describe("methods", () => {
  const allowed: [string, string, string][] = [
    ["DELETE", "/api/exports/3", "GET, HEAD, OPTIONS"],
    ["PUT", "/api/exports", "GET, HEAD, OPTIONS"],
    ["GET", "/api/storage/export-all", "POST, OPTIONS"],
    ["PATCH", "/api/exports/3/download", "GET, HEAD, OPTIONS"],
    ["GET", "/api/exports/3/download-link", "POST, OPTIONS"],
    ["POST", "/healthz", "GET, HEAD, OPTIONS"],
    ["DELETE", "/metrics", "GET, HEAD, OPTIONS"],
  ];
  it.each(allowed)("%s %s answers 405 with Allow: %s, signed in or not", async (method, url, allow) => {
    for (const token of [users.b.token, undefined]) {
      const response = await call(method, url, token);
      expect(response).toMatchObject({ status: 405, body: { success: false, error: { code: "METHOD_NOT_ALLOWED" } } });
      expect(response.headers.get("allow")).toBe(allow);
    }
    const options = await call("OPTIONS", url);
    expect(options.status).toBe(204);
    expect(options.headers.get("allow")).toBe(allow);
  });
});
