// The REST API's OpenAPI 3.1 document: served at /api/openapi.json, linted with
// Redocly's recommended rules (warnings as errors, `npm run lint:openapi`), and
// true to the gateway: every operation it documents is routed. (Every answer the
// REST tests receive is checked against it too: test/support/openapi.ts.)
import { afterAll, beforeAll, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { useTestDatabase } from "../support/db.ts";
import { callRest } from "../support/openapi.ts";
import { startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
const documentFile = new URL("../../src/server/openapi.json", import.meta.url);

beforeAll(async () => {
  server = await startServer({ databaseUrl: db.url });
});
afterAll(() => server?.stop());

it("passes npm run lint:openapi (Redocly, recommended-strict)", async () => {
  const { stdout, stderr } = await promisify(execFile)("npm", ["run", "-s", "lint:openapi"], { cwd: new URL("../..", import.meta.url) });
  expect(`${stdout}${stderr}`).toContain("Your API description is valid");
}, 60_000);

it("is served at /api/openapi.json, to anyone, as the file says", async () => {
  const answer = await callRest(server.baseUrl, "GET", "/api/openapi.json");
  expect(answer.status).toBe(200);
  expect(answer.body).toEqual(JSON.parse(await readFile(documentFile, "utf8")));
  expect(answer.body.openapi).toMatch(/^3\.1\./);
});

it("documents only operations the gateway routes: each answers a documented status, not 405 or the gateway's unknown-endpoint 404", async () => {
  const document = JSON.parse(await readFile(documentFile, "utf8")) as { paths: Record<string, Record<string, unknown>> };
  const operations = Object.entries(document.paths).flatMap(([path, item]) =>
    Object.keys(item).filter((key) => key !== "parameters").map((method) => [method.toUpperCase(), path.replace(/\{id\}/g, "1")] as const));
  expect(operations.length).toBeGreaterThanOrEqual(10);
  for (const [method, path] of operations) {
    // Anonymous: nothing changes, and callRest checks the answer against the document.
    const answer = await callRest(server.baseUrl, method, path);
    expect(answer.status, `${method} ${path}`).not.toBe(405);
    expect(answer.body?.error?.message ?? "", `${method} ${path}`).not.toMatch(/^No endpoint/);
  }
});
