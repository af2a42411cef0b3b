// Feeds through REST and GraphQL in one `prompter start` process (gateway and
// worker): create, run with ?wait=true, list runs with their files, download
// them (with the export download rules, the token or a signed link), pause, resume, delete; others see none
// of it. Every answer is checked against the OpenAPI document.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import { callRest } from "../support/openapi.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
const tokens = { owner: "", other: "", admin: "" };
let ownerId: string;

beforeAll(async () => {
  ownerId = await createUser(db.pool);
  tokens.owner = signTestToken(ownerId);
  tokens.other = signTestToken(await createUser(db.pool));
  tokens.admin = signTestToken(await createUser(db.pool, { admin: true }), { admin: true });
  await db.pool.query("select app_private.generate_demo($1, 12)", [ownerId]);
  server = await startServer({ databaseUrl: db.url, args: ["start"], env: { EXPORT_WAIT_SECONDS: "30" } });
});
afterAll(() => server?.stop());

const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { "content-type": "application/json" } });

describe("REST", () => {
  it("creates a feed, runs it with ?wait=true, lists its runs and downloads their files", async () => {
    const created = await callRest(server.baseUrl, "POST", "/api/feeds", { token: tokens.owner, ...json({ kind: "prompt_versions", format: "jsonl", every: "1h", options: { gzip: false } }) });
    expect(created.status).toBe(201);
    const feed = created.body.feed;
    expect(created.headers.get("location")).toBe(`/api/feeds/${feed.id}`);
    expect(feed).toMatchObject({ kind: "prompt_versions", format: "jsonl", every: "1h", paused: false, last_run: null });

    const ran = await callRest(server.baseUrl, "POST", `/api/feeds/${feed.id}/runs?wait=true`, { token: tokens.owner });
    expect(ran.status).toBe(200);
    expect(ran.body.run).toMatchObject({ number: 1, status: "succeeded", rows: 36 });
    const dataFile = ran.body.run.files[0];
    expect(dataFile).toMatchObject({ name: "prompt_versions.jsonl", rows: 36 });

    const download = await fetch(`${server.baseUrl}${dataFile.download_url}`, { headers: { authorization: `Bearer ${tokens.owner}` } });
    const content = Buffer.from(await download.arrayBuffer());
    expect(download.status).toBe(200);
    expect(download.headers.get("etag")).toBe(`"${dataFile.sha256}"`);
    expect(createHash("sha256").update(content).digest("hex")).toBe(dataFile.sha256);
    expect(content.toString("utf8").trim().split("\n")).toHaveLength(36);

    const manifest = await callRest(server.baseUrl, "GET", ran.body.run.manifest_url, { token: tokens.owner });
    expect(manifest.status).toBe(200);
    expect(manifest.body).toMatchObject({ feed: feed.id, run: 1, kind: "prompt_versions", format: "jsonl", schema_version: 1 });
    expect(manifest.body.files.map((file: { name: string }) => file.name)).toEqual(["prompt_versions.jsonl", "deleted.jsonl"]);

    const again = await callRest(server.baseUrl, "POST", `/api/feeds/${feed.id}/runs?wait=true`, { token: tokens.owner });
    expect(again.body.run).toMatchObject({ number: 2, status: "succeeded", rows: 0 });
    const runs = await callRest(server.baseUrl, "GET", `/api/feeds/${feed.id}/runs`, { token: tokens.owner });
    expect(runs.body.runs.map((run: { number: number }) => run.number)).toEqual([1, 2]);
    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^prompter_feed_runs_succeeded_total\{kind="prompt_versions",format="jsonl"\} 2$/m);
    expect(metrics).toMatch(/^prompter_feed_run_rows_sum\{kind="prompt_versions",format="jsonl"\} 36$/m);
    const listed = await callRest(server.baseUrl, "GET", "/api/feeds", { token: tokens.owner });
    expect(listed.body.feeds.map((f: { id: number }) => f.id)).toContain(feed.id);
    expect(listed.body.feeds.find((f: { id: number }) => f.id === feed.id).last_run.number).toBe(2);

    // Others see nothing of it: not the feed, its runs, nor its files.
    for (const [method, url] of [
      ["GET", `/api/feeds/${feed.id}`],
      ["GET", `/api/feeds/${feed.id}/runs`],
      ["POST", `/api/feeds/${feed.id}/runs`],
      ["POST", `/api/feeds/${feed.id}/pause`],
      ["DELETE", `/api/feeds/${feed.id}`],
      ["GET", dataFile.download_url],
    ]) {
      const answer = await callRest(server.baseUrl, method, url, { token: tokens.other });
      expect(answer.status, `${method} ${url}`).toBe(404);
    }
    expect((await callRest(server.baseUrl, "GET", `/api/feeds/${feed.id}`)).status).toBe(401);
    expect((await callRest(server.baseUrl, "GET", `/api/feeds/${feed.id}/runs/1/files/nope.csv`, { token: tokens.owner })).status).toBe(404);
    expect((await callRest(server.baseUrl, "GET", `/api/feeds/${feed.id}/runs/1/files/..%2F..%2Fx.csv`, { token: tokens.owner })).status).toBe(404);
  });

  it("downloads a run's files with a signed link, made for that file and that user only, as exports are", async () => {
    const { body } = await callRest(server.baseUrl, "POST", "/api/feeds", { token: tokens.owner, ...json({ kind: "prompts", format: "csv" }) });
    const ran = await callRest(server.baseUrl, "POST", `/api/feeds/${body.feed.id}/runs?wait=true`, { token: tokens.owner });
    const [dataFile] = ran.body.run.files;
    const linkOf = (file: string, token = tokens.owner) =>
      callRest(server.baseUrl, "POST", `/api/feeds/${body.feed.id}/runs/1/files/${file}/download-link`, { token });
    const made = await linkOf(dataFile.name);
    expect(made.status).toBe(200);
    expect(Date.parse(made.body.expires_at) - Date.now()).toBeLessThanOrEqual(60_000);
    const url = new URL(made.body.url, server.baseUrl);
    expect(url.pathname).toBe(dataFile.download_url);
    // No token: the link alone.
    const download = await fetch(url);
    expect(download.status).toBe(200);
    expect(createHash("sha256").update(Buffer.from(await download.arrayBuffer())).digest("hex")).toBe(dataFile.sha256);
    const manifest = await fetch(new URL((await linkOf("manifest.json")).body.url, server.baseUrl));
    expect((await manifest.json()).files.map((file: { name: string }) => file.name)).toEqual(["prompts.csv", "deleted.csv"]);

    // The link opens neither another file of the run, nor an export of the same number, nor for another user.
    const refused = async (path: string, changed: Record<string, string> = {}) => {
      const query = new URLSearchParams({ ...Object.fromEntries(url.searchParams), ...changed });
      return (await callRest(server.baseUrl, "GET", `${path}?${query}`)).body.error?.code;
    };
    expect(await refused(`/api/feeds/${body.feed.id}/runs/1/files/deleted.csv`)).toBe("DOWNLOAD_LINK_INVALID");
    expect(await refused(`/api/exports/${body.feed.id}/download`)).toBe("DOWNLOAD_LINK_INVALID");
    expect(await refused(url.pathname, { user: String(Number(ownerId) + 1) })).toBe("DOWNLOAD_LINK_INVALID");
    expect(await refused(url.pathname, { expires: String(Math.floor(Date.now() / 1000) - 1) })).toBe("DOWNLOAD_LINK_INVALID");
    // Another user gets no link to it; anonymous neither; nor to a file the run does not have.
    expect((await linkOf(dataFile.name, tokens.other)).status).toBe(404);
    expect((await callRest(server.baseUrl, "POST", `/api/feeds/${body.feed.id}/runs/1/files/${dataFile.name}/download-link`)).status).toBe(401);
    expect((await linkOf("nope.csv")).status).toBe(404);
  });

  it("pauses, resumes and deletes", async () => {
    const { body } = await callRest(server.baseUrl, "POST", "/api/feeds", { token: tokens.owner, ...json({ kind: "prompts", format: "csv", every: "1d" }) });
    const paused = await callRest(server.baseUrl, "POST", `/api/feeds/${body.feed.id}/pause`, { token: tokens.owner });
    expect(paused.body.feed).toMatchObject({ paused: true, next_run_at: null });
    const resumed = await callRest(server.baseUrl, "POST", `/api/feeds/${body.feed.id}/resume`, { token: tokens.owner });
    expect(resumed.body.feed.paused).toBe(false);
    expect(Date.parse(resumed.body.feed.next_run_at)).toBeLessThanOrEqual(Date.now() + 1000);
    expect((await callRest(server.baseUrl, "DELETE", `/api/feeds/${body.feed.id}`, { token: tokens.owner })).status).toBe(204);
    expect((await callRest(server.baseUrl, "GET", `/api/feeds/${body.feed.id}`, { token: tokens.owner })).status).toBe(404);
  });

  it.each([
    [{ kind: "prompts", format: "csv", every: "5m" }, 400, "PFEVR"],
    [{ kind: "nope", format: "csv" }, 400, "PFKND"],
    [{ kind: "prompts", format: "csv", is_global: true }, 403, "PFGLB"],
    [{ kind: "prompts", format: "csv", colour: "red" }, 400, "BAD_BODY"],
    [{ kind: 7, format: "csv" }, 400, "BAD_BODY"],
  ])("refuses %j with %s %s", async (feed, status, code) => {
    const answer = await callRest(server.baseUrl, "POST", "/api/feeds", { token: tokens.owner, ...json(feed) });
    expect(answer.status).toBe(status);
    expect(answer.body.error.code).toBe(code);
  });

  it("an admin may create a global feed", async () => {
    const answer = await callRest(server.baseUrl, "POST", "/api/feeds", { token: tokens.admin, ...json({ kind: "judge_scores", format: "parquet", is_global: true }) });
    expect(answer.status).toBe(201);
    const ran = await callRest(server.baseUrl, "POST", `/api/feeds/${answer.body.feed.id}/runs?wait=true`, { token: tokens.admin });
    expect(ran.body.run).toMatchObject({ status: "succeeded", rows: 36 });
  });
});

describe("GraphQL", () => {
  it("creates, lists and runs feeds", async () => {
    const created = await graphql(server, `mutation { createFeed(input: { kind: "judge_scores", format: "csv", every: "20m" }) { result { rowId kind every { minutes hours } } } }`, {}, tokens.owner);
    expect(created.errors).toBeUndefined();
    const feedId = created.data!.createFeed.result.rowId;
    const ran = await graphql(server, `mutation($id: BigInt!) { requestFeedRun(input: { feedId: $id }) { result { number status } } }`, { id: feedId }, tokens.owner);
    expect(ran.errors).toBeUndefined();
    expect(ran.data!.requestFeedRun.result).toMatchObject({ number: 1 });
    const listed = await graphql(server, `{ allFeeds(first: 10) { nodes { rowId kind feedRunsByFeedId(first: 10) { nodes { number } } } } }`, {}, tokens.owner);
    expect(listed.errors).toBeUndefined();
    expect(listed.data!.allFeeds.nodes.map((feed: { rowId: string }) => String(feed.rowId))).toContain(String(feedId));
    const others = await graphql(server, `{ allFeeds(first: 10) { nodes { rowId } } }`, {}, tokens.other);
    expect(others.data!.allFeeds.nodes).toEqual([]);
    const paused = await graphql(server, `mutation($id: BigInt!) { setFeedPaused(input: { feedId: $id, paused: true }) { result { paused } } }`, { id: feedId }, tokens.owner);
    expect(paused.data!.setFeedPaused.result).toEqual({ paused: true });
    const deleted = await graphql(server, `mutation($id: BigInt!) { deleteFeedByRowId(input: { rowId: $id }) { deletedFeedId } }`, { id: feedId }, tokens.owner);
    expect(deleted.errors).toBeUndefined();
  });
});
