// The REST tests' setup, shared by rest.test.ts and rest-downloads.test.ts: a
// database with five users (a, b, an admin, a waiter, a limited one), a's and
// b's seeded figures, a gateway and a second one that waits at most a second
// for an export, and helpers that stand in for the worker.
import { afterAll, beforeAll, expect } from "vitest";
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { createUser, useTestDatabase } from "../support/db.ts";
import { callRest } from "../support/openapi.ts";
import { signTestToken, startServer, type RunningServer } from "../support/server.ts";

export function useRestGateways() {
  const db = useTestDatabase();
  const gateways = {} as { server: RunningServer; /** A second gateway that waits at most a second for an export. */ impatient: RunningServer };
  const users: Record<"a" | "b" | "admin" | "waiter" | "limited", { id: string; name: string; token: string }> = {} as never;

  /** Every answer is checked against the OpenAPI document first (callRest). */
  const call = (method: string, url: string, token?: string, init: { body?: string; headers?: Record<string, string>; on?: RunningServer } = {}) =>
    callRest((init.on ?? gateways.server).baseUrl, method, url, { token, ...init });
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
   * Setup standing in for the worker, which `prompter gateways.server` does not run: records
   * an outcome as the database owner and notifies as the worker does.
   */
  async function recordOutcome(exportId: number, outcome: { status: "running" | "failed"; error?: string } | { status: "succeeded"; content: string; fileName?: string }) {
    if (outcome.status !== "succeeded") {
      await db.pool.query("update app_public.exports set status = $2, error_message = $3, started_at = now() where id = $1", [exportId, outcome.status, outcome.error ?? null]);
    } else {
      const fileName = outcome.fileName ?? `multi_agent_log-${exportId}.csv`;
      await writeFile(path.join(gateways.server.exportDir, fileName), outcome.content);
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
    [gateways.server, gateways.impatient] = await Promise.all([
      startServer({ databaseUrl: db.url, env: { EXPORT_WAIT_SECONDS: "30" } }),
      startServer({ databaseUrl: db.url, env: { EXPORT_WAIT_SECONDS: "1" } }),
    ]);
  });
  afterAll(() => Promise.all([gateways.server?.stop(), gateways.impatient?.stop()]));
  return { db, gateways, users, call, postJson, recordOutcome, exportCreatedBy, queueExport, exportCount };
}
