// The REST endpoints: their exact shapes, what each caller may see (RLS as the
// caller), export waiting and downloads, and the error codes for bad input.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash, createHmac } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { wilson } from "../analytics/oracle.ts";
import { createUser, useTestDatabase } from "../support/db.ts";
import { callRest } from "../support/openapi.ts";
import { graphql as graphqlAs, signTestToken, startServer, TEST_JWT_SECRET, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
/** A second gateway that waits at most a second for an export. */
let impatient: RunningServer;
const users: Record<"a" | "b" | "admin" | "waiter" | "limited", { id: string; name: string; token: string }> = {} as never;

/** Every answer is checked against the OpenAPI document first (callRest). */
const call = (method: string, url: string, token?: string, init: { body?: string; headers?: Record<string, string>; on?: RunningServer } = {}) =>
  callRest((init.on ?? server).baseUrl, method, url, { token, ...init });
const postJson = (url: string, token: string, body: string) => call("POST", url, token, { body, headers: { "content-type": "application/json" } });

/** Setup as the database owner: a prompt with versions, scores and a best head. */
async function seedPrompt(userId: string, versions: { source: string; score?: number; best?: boolean }[]) {
  const { rows: [prompt] } = await db.pool.query("insert into app_public.prompts (user_id, text) values ($1, 'Seeded prompt') returning id", [userId]);
  for (const version of versions) {
    const { rows: [v] } = await db.pool.query(
      "insert into app_public.prompt_versions (prompt_id, user_id, text, source) values ($1, $2, 'Improved', $3) returning id",
      [prompt.id, userId, version.source]);
    if (version.score !== undefined) {
      const c = version.score / 5;
      await db.pool.query(
        "insert into app_public.judge_scores (prompt_version_id, user_id, clarity, specificity, actionability, structure, context_use) values ($1, $2, $3, $3, $3, $3, $3)",
        [v.id, userId, c]);
    }
    if (version.best) {
      await db.pool.query("insert into app_public.best_heads (prompt_id, prompt_version_id, user_id) values ($1, $2, $3)", [prompt.id, v.id, userId]);
    }
  }
}

/**
 * Setup standing in for the worker, which `prompter server` does not run: records
 * an outcome as the database owner and notifies as the worker does.
 */
async function recordOutcome(exportId: number, outcome: { status: "running" | "failed"; error?: string } | { status: "succeeded"; content: string; fileName?: string }) {
  if (outcome.status !== "succeeded") {
    await db.pool.query("update app_public.exports set status = $2, error_message = $3, started_at = now() where id = $1", [exportId, outcome.status, outcome.error ?? null]);
  } else {
    const fileName = outcome.fileName ?? `multi_agent_log-${exportId}.csv`;
    await writeFile(path.join(server.exportDir, fileName), outcome.content);
    await db.pool.query(
      `update app_public.exports set status = 'succeeded', finished_at = now(), rows = $2, bytes = $3, sha256 = $4, file_name = $5 where id = $1`,
      [exportId, outcome.content.split("\n").length - 2, Buffer.byteLength(outcome.content), createHash("sha256").update(outcome.content).digest("hex"), fileName]);
  }
  await db.pool.query("select pg_notify(app_private.exports_channel(), $1)", [String(exportId)]);
}

/** Starts `request` and, while it runs, returns the id of the export it created. */
async function exportCreatedBy<T>(userId: string, request: () => Promise<T>): Promise<{ id: number; response: Promise<T> }> {
  const newest = "select coalesce(max(id), 0)::int as id from app_public.exports where user_id = $1";
  const before = (await db.pool.query(newest, [userId])).rows[0].id;
  const response = request();
  for (let attempt = 0; attempt < 400; attempt++) {
    const { id } = (await db.pool.query(newest, [userId])).rows[0];
    if (id > before) return { id, response };
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no export appeared; the request answered ${JSON.stringify(await response)}`);
}

async function queueExport(user: { token: string }): Promise<number> {
  const response = await call("POST", "/api/storage/export-multi-agent", user.token);
  expect(response.status).toBe(202);
  return response.body.export_id;
}

const exportCount = async (userId: string) =>
  (await db.pool.query("select count(*)::int as n from app_public.exports where user_id = $1", [userId])).rows[0].n;

beforeAll(async () => {
  for (const name of ["a", "b", "admin", "waiter", "limited"] as const) {
    const username = `rest_${name}`;
    const id = await createUser(db.pool, { admin: name === "admin", username });
    users[name] = { id, name: username, token: signTestToken(id, { admin: name === "admin" }) };
  }
  // Agent figures of a: syntax 2 versions, 1 win, scores 40 and 20; structure 2
  // versions, 1 win, scores 30 and 45; domain 1 version, unscored.
  await seedPrompt(users.a.id, [{ source: "syntax", score: 40, best: true }, { source: "structure", score: 30 }, { source: "domain" }]);
  await seedPrompt(users.a.id, [{ source: "syntax", score: 20 }, { source: "structure", score: 45, best: true }]);
  await seedPrompt(users.b.id, [{ source: "domain", score: 50, best: true }]);
  [server, impatient] = await Promise.all([
    startServer({ databaseUrl: db.url, env: { EXPORT_WAIT_SECONDS: "30" } }),
    startServer({ databaseUrl: db.url, env: { EXPORT_WAIT_SECONDS: "1" } }),
  ]);
});
afterAll(() => Promise.all([server?.stop(), impatient?.stop()]));

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
    expect(JSON.stringify(response.body)).not.toContain(server.exportDir);
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
    const response = await call("POST", "/api/storage/export-all?wait=true", users.admin.token, { on: impatient });
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
    const { errors } = await graphqlAs(server, 'mutation { requestExport(input: {kind: "all"}) { result { rowId } } }', {}, users.limited.token);
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

describe("GET /api/exports/:id/download", () => {
  it("streams the file to its owner and an admin, with Content-Disposition and the sha256 as ETag", async () => {
    const id = await queueExport(users.waiter);
    await recordOutcome(id, { status: "succeeded", content: "request_id,original_prompt\n1,hello\n2,world\n" });
    const { rows: [row] } = await db.pool.query("select sha256, file_name from app_public.exports where id = $1", [id]);
    for (const user of [users.waiter, users.admin]) {
      const response = await call("GET", `/api/exports/${id}/download`, user.token);
      expect(response.status).toBe(200);
      expect(response.text).toBe("request_id,original_prompt\n1,hello\n2,world\n");
      expect(response.headers.get("etag")).toBe(`"${row.sha256}"`);
      expect(response.headers.get("content-disposition")?.replaceAll('"', "")).toBe(`attachment; filename=${row.file_name}`);
      expect(response.headers.get("content-type")).toMatch(/^text\/csv/);
    }
    const unchanged = await call("GET", `/api/exports/${id}/download`, users.waiter.token, { headers: { "if-none-match": `"${row.sha256}"` } });
    expect(unchanged.status).toBe(304);
    const stranger = await call("GET", `/api/exports/${id}/download`, users.b.token);
    expect(stranger).toMatchObject({ status: 404, body: { error: { code: "NOT_FOUND" } } });
    expect(stranger.text).not.toContain("hello");
  });

  it("resumes: Range and If-Range answer 206 with the part, Accept-Ranges and Last-Modified are sent", async () => {
    const content = "request_id,original_prompt\n1,hello\n2,world\n";
    const id = await queueExport(users.waiter);
    await recordOutcome(id, { status: "succeeded", content });
    const url = `/api/exports/${id}/download`;
    const whole = await call("GET", url, users.waiter.token);
    expect(whole.headers.get("accept-ranges")).toBe("bytes");
    const lastModified = whole.headers.get("last-modified")!;
    expect(Date.parse(lastModified)).toBeGreaterThan(Date.now() - 60_000);
    const etag = whole.headers.get("etag")!;

    const part = await call("GET", url, users.waiter.token, { headers: { range: "bytes=27-33" } });
    expect(part.status).toBe(206);
    expect(part.text).toBe(content.slice(27, 34));
    expect(part.headers.get("content-range")).toBe(`bytes 27-33/${content.length}`);
    const rest = await call("GET", url, users.waiter.token, { headers: { range: "bytes=27-", "if-range": etag } });
    expect(rest).toMatchObject({ status: 206, text: content.slice(27) });
    const byDate = await call("GET", url, users.waiter.token, { headers: { range: "bytes=27-", "if-range": lastModified } });
    expect(byDate).toMatchObject({ status: 206, text: content.slice(27) });
    // The file changed since the client's part: it gets the whole new file.
    const changed = await call("GET", url, users.waiter.token, { headers: { range: "bytes=27-", "if-range": '"an-older-sha256"' } });
    expect(changed).toMatchObject({ status: 200, text: content });
    const beyond = await call("GET", url, users.waiter.token, { headers: { range: `bytes=${content.length + 10}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get("content-range")).toBe(`bytes */${content.length}`);
  });

  it("POST /api/exports/:id/download-link gives a signed URL that works without a token for a minute", async () => {
    const content = "request_id\n7\n";
    const id = await queueExport(users.waiter);
    await recordOutcome(id, { status: "succeeded", content });
    const linkPath = `/api/exports/${id}/download-link`;
    const issued = await call("POST", linkPath, users.waiter.token);
    expect(issued).toMatchObject({ status: 200, body: { success: true, url: expect.stringMatching(new RegExp(`^/api/exports/${id}/download\\?`)) } });
    const { url, expires_at } = issued.body;
    expect(Date.parse(expires_at) - Date.now()).toBeGreaterThan(50_000);
    expect(Date.parse(expires_at) - Date.now()).toBeLessThanOrEqual(60_000);
    expect(url).not.toContain(users.waiter.token.split(".")[2]);
    const fetched = await call("GET", url);
    expect(fetched).toMatchObject({ status: 200, text: content });
    expect(fetched.headers.get("content-disposition")).toContain(`multi_agent_log-${id}.csv`);

    const link = new URL(url, server.baseUrl);
    const altered = (name: string, value: string) => {
      const changed = new URL(link);
      changed.searchParams.set(name, value);
      return `${changed.pathname}${changed.search}`;
    };
    // The signature, recomputed here, binds the export, the user, the role, the token's session and the expiry.
    const session = link.searchParams.get("session")!;
    expect(session).toMatch(/^0\.\d+$/); // the token's generation and issue time
    const sign = (exportId: number, user: string, as: string, expires: number) => {
      const key = createHmac("sha256", TEST_JWT_SECRET).update("prompter download links v1").digest();
      return createHmac("sha256", key).update([exportId, user, as, session, expires].join("\n")).digest("base64url");
    };
    expect(link.searchParams.get("signature")).toBe(sign(id, users.waiter.id, "user", Number(link.searchParams.get("expires"))));
    const past = Math.floor(Date.now() / 1000) - 1;
    const forged: [string, string, string][] = [
      ["another user", altered("user", users.b.id), "DOWNLOAD_LINK_INVALID"],
      ["raised to admin", altered("as", "admin"), "DOWNLOAD_LINK_INVALID"],
      ["another session", altered("session", "7."), "DOWNLOAD_LINK_INVALID"],
      ["a later expiry", altered("expires", String(Number(link.searchParams.get("expires")) + 3600)), "DOWNLOAD_LINK_INVALID"],
      ["another export", url.replace(`/exports/${id}/`, `/exports/${id - 1}/`), "DOWNLOAD_LINK_INVALID"],
      ["no signature", altered("signature", ""), "BAD_PARAMETER"],
      ["expired", `/api/exports/${id}/download?user=${users.waiter.id}&as=user&session=${session}&expires=${past}&signature=${sign(id, users.waiter.id, "user", past)}`, "DOWNLOAD_LINK_EXPIRED"],
    ];
    for (const [, forgedUrl, code] of forged) {
      const refused = await call("GET", forgedUrl);
      expect(refused).toMatchObject({ status: code === "BAD_PARAMETER" ? 400 : 403, body: { success: false, error: { code } } });
      expect(refused.text).not.toContain("request_id");
    }
    // A link stands for its user: RLS still decides, so one signed for b finds nothing of the waiter's.
    const forB = `/api/exports/${id}/download?user=${users.b.id}&as=user&session=${session}&expires=${past + 61}&signature=${sign(id, users.b.id, "user", past + 61)}`;
    expect(await call("GET", forB)).toMatchObject({ status: 404, body: { error: { code: "NOT_FOUND" } } });
    // Only the export's owner (or an admin) gets a link.
    expect(await call("POST", linkPath, users.b.token)).toMatchObject({ status: 404, body: { error: { code: "NOT_FOUND" } } });
    expect(await call("POST", linkPath)).toMatchObject({ status: 401, body: { error: { code: "SIGN_IN_REQUIRED" } } });
    expect((await call("POST", linkPath, users.admin.token)).status).toBe(200);
  });

  it("a signed link checks its user's session on download: it stops working once they sign out everywhere, are disabled or, made for an admin, are demoted", async () => {
    const content = "request_id\n8\n";
    const linkOf = async (token: string, id: number) => (await call("POST", `/api/exports/${id}/download-link`, token)).body.url as string;
    const fresh = async (admin: boolean) => {
      const id = await createUser(db.pool, { admin });
      const name = (await db.pool.query("select username from app_public.users where id = $1", [id])).rows[0].username;
      return { id, name, token: signTestToken(id, { admin }) };
    };
    const demoted = await fresh(true);
    const disabled = await fresh(true);
    const signedOut = await fresh(false);
    // An export of the waiter's, which an admin's link reads through RLS; one of the user's own.
    const waiters = await queueExport(users.waiter);
    await recordOutcome(waiters, { status: "succeeded", content });
    const own = await queueExport(signedOut);
    await recordOutcome(own, { status: "succeeded", content });
    // The admin's own export of everyone's data, and one of their own rows only (asked as a plain user).
    const everyones = await queueExport(demoted);
    await recordOutcome(everyones, { status: "succeeded", content });
    const client = await db.pool.connect();
    const { rows: [{ id: personal }] } = await client.query("begin")
      .then(() => client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [demoted.id]))
      .then(() => client.query("select id::int from app_public.request_export('multi_agent_log')"))
      .finally(() => client.query("commit").finally(() => client.release()));
    await recordOutcome(personal, { status: "succeeded", content });
    const links = {
      demoted: await linkOf(demoted.token, waiters),
      demotedEveryones: await linkOf(demoted.token, everyones),
      demotedPersonal: await linkOf(demoted.token, personal),
      disabled: await linkOf(disabled.token, waiters),
      signedOut: await linkOf(signedOut.token, own),
    };
    for (const url of Object.values(links)) expect(await call("GET", url)).toMatchObject({ status: 200, text: content });

    await db.pool.query("select app_private.set_user_admin($1, false)", [demoted.name]);
    await db.pool.query("select app_private.set_user_disabled($1, true)", [disabled.name]);
    await db.pool.query("select app_private.revoke_tokens($1)", [signedOut.id]);
    // Someone else's export is out of sight; their own export of everyone's data is refused, by link or
    // token, and no longer offered; a link made while admin works no more, even for their own rows.
    expect(await call("GET", links.demoted)).toMatchObject({ status: 404, body: { error: { code: "NOT_FOUND" } } });
    expect(await call("GET", links.demotedEveryones)).toMatchObject({ status: 403, body: { error: { code: "EXPORT_NOT_DOWNLOADABLE" } } });
    expect(await call("GET", `/api/exports/${everyones}/download`, demoted.token)).toMatchObject({ status: 403, body: { error: { code: "EXPORT_NOT_DOWNLOADABLE" } } });
    expect((await call("GET", `/api/exports/${everyones}`, demoted.token)).body.export.download_url).toBeNull();
    expect(await call("GET", links.demotedPersonal)).toMatchObject({ status: 403, body: { error: { code: "DOWNLOAD_LINK_INVALID" } } });
    expect(await call("GET", `/api/exports/${personal}/download`, demoted.token)).toMatchObject({ status: 200, text: content });
    expect(await call("GET", links.disabled)).toMatchObject({ status: 401, body: { error: { code: "PRSES" } } });
    expect(await call("GET", links.signedOut)).toMatchObject({ status: 401, body: { error: { code: "PRSES" } } });
    // A link made after signing in again works.
    const again = signTestToken(signedOut.id, { claims: { token_generation: 1 } });
    expect(await call("GET", await linkOf(again, own))).toMatchObject({ status: 200, text: content });
  });

  it("answers 409 for an export that has not succeeded, and 410 once the file is gone", async () => {
    const id = await queueExport(users.waiter);
    expect(await call("GET", `/api/exports/${id}/download`, users.waiter.token)).toMatchObject({
      status: 409, body: { success: false, error: { code: "EXPORT_NOT_READY" } },
    });
    await recordOutcome(id, { status: "succeeded", content: "request_id\n" });
    expect((await call("GET", `/api/exports/${id}/download`, users.waiter.token)).status).toBe(200);
    const { rows: [row] } = await db.pool.query("select file_name from app_public.exports where id = $1", [id]);
    await rm(path.join(server.exportDir, row.file_name));
    expect(await call("GET", `/api/exports/${id}/download`, users.waiter.token)).toMatchObject({
      status: 410, body: { success: false, error: { code: "EXPORT_FILE_GONE" } },
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
