// Formats and filters of one-off exports through the gateway: REST's body and
// GraphQL's requestExport take them (and the schema's refusals come back with
// their codes, nothing queued), and a download's name and Content-Type follow
// the format. (What the files hold: test/exports/formats.test.ts.)
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { callRest } from "../support/openapi.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
let userId: string;
let token: string;

/** Every answer is checked against the OpenAPI document first (callRest). */
const post = (url: string, body: unknown) =>
  callRest(server.baseUrl, "POST", url, { token, body: JSON.stringify(body), headers: { "content-type": "application/json" } });
const counts = async () =>
  (await db.pool.query(
    "select (select count(*)::int from app_public.exports) as exports, (select count(*)::int from graphile_worker.jobs where task_identifier = 'export') as jobs",
  )).rows[0];

beforeAll(async () => {
  userId = await createUser(db.pool);
  token = signTestToken(userId);
  await db.pool.query("insert into app_public.agents (name) values ('zeta') on conflict do nothing");
  server = await startServer({ databaseUrl: db.url });
});
afterAll(() => server?.stop());

describe("REST", () => {
  it("takes format and filters next to the options, and answers with them", async () => {
    const filters = { created_after: "2025-01-01T00:00:00Z", created_before: "2025-02-01T00:00:00Z" };
    const response = await post("/api/storage/export-multi-agent", { format: "jsonl", gzip: true, filters });
    expect(response.status).toBe(202);
    expect(response.body.export).toMatchObject({ kind: "multi_agent_log", format: "jsonl", options: { gzip: true }, filters });
    const all = await post("/api/storage/export-all", { format: "parquet", filters: { agents: ["zeta"] } });
    expect(all.body.export).toMatchObject({ kind: "all", format: "parquet", options: {}, filters: { agents: ["zeta"] } });
    const { rows } = await db.pool.query("select format, options, filters from app_public.exports where id = $1", [all.body.export_id]);
    expect(rows[0]).toEqual({ format: "parquet", options: {}, filters: { agents: ["zeta"] } });
  });

  it.each([
    ["an unknown format", { format: "xlsx" }, "PFFMT"],
    ["a format that is no text", { format: ["csv"] }, "PFFMT"],
    ["excel on Parquet", { format: "parquet", excel: true }, "PROPT"],
    ["created_after after created_before", { filters: { created_after: "2025-02-01", created_before: "2025-01-01" } }, "PFFLT"],
    ["an unknown agent", { filters: { agents: ["nobody"] }, format: "parquet" }, "PFFLT"],
    ["agents on multi_agent_log", { filters: { agents: ["zeta"] } }, "PFFLT"],
    ["filters that are no object", { filters: "zeta" }, "PFFLT"],
  ])("refuses %s with 400 and its code, queueing nothing", async (_case, body, code) => {
    const before = await counts();
    const response = await post("/api/storage/export-multi-agent", body);
    expect(response).toMatchObject({ status: 400, body: { success: false, error: { code } } });
    expect(await counts()).toEqual(before);
  });

  it.each([
    ["parquet", "parquet", "application/vnd.apache.parquet"],
    ["jsonl", "jsonl", "application/jsonl; charset=utf-8"],
    ["jsonl", "jsonl.gz", "application/gzip"],
  ])("a %s download is named .%s and sent as %s", async (format, extension, contentType) => {
    const { body } = await post("/api/storage/export-multi-agent", { format, ...(extension.endsWith(".gz") ? { gzip: true } : {}) });
    // Standing in for the worker (the gateway runs none): the file and its outcome.
    const fileName = `multi_agent_log-${body.export_id}-1-0123abcd.${extension}`;
    const content = Buffer.from(`not really ${format}\n`);
    await writeFile(path.join(server.exportDir, fileName), content);
    await db.pool.query(
      "update app_public.exports set status = 'succeeded', finished_at = now(), rows = 1, bytes = $2, sha256 = $3, file_name = $4 where id = $1",
      [body.export_id, content.length, createHash("sha256").update(content).digest("hex"), fileName]);
    const download = await callRest(server.baseUrl, "GET", `/api/exports/${body.export_id}/download`, { token });
    expect(download.status).toBe(200);
    expect(download.headers.get("content-type")).toBe(contentType);
    expect(download.headers.get("content-disposition")).toMatch(new RegExp(`^attachment; filename="?${fileName.replaceAll(".", "\\.")}"?$`));
  });
});

describe("GraphQL", () => {
  it("requestExport takes format and filters", async () => {
    const { data, errors } = await graphql(server,
      `mutation { requestExport(input: { kind: "judge_scores", format: "parquet", filters: { agents: ["zeta"], created_after: "2025-01-01" } }) {
         result { rowId kind format options filters status } } }`, {}, token);
    expect(errors).toBeUndefined();
    expect((data as { requestExport: { result: unknown } }).requestExport.result).toMatchObject({
      kind: "judge_scores", format: "parquet", options: {}, filters: { agents: ["zeta"], created_after: "2025-01-01" }, status: "queued",
    });
  });

  it.each([
    [`format: "xml"`, "PFFMT"],
    [`format: "jsonl", options: { excel: true }`, "PROPT"],
    [`filters: { created_after: "2025-03-01", created_before: "2025-01-01" }`, "PFFLT"],
  ])("refuses %s with %s, queueing nothing", async (args, code) => {
    const before = await counts();
    const { errors } = await graphql(server, `mutation { requestExport(input: { kind: "judge_scores", ${args} }) { result { rowId } } }`, {}, token);
    expect(errors).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code }) })]);
    expect(await counts()).toEqual(before);
  });
});
