// The Feeds page in Debian's Chromium against a real `prompter start` (gateway
// and worker): create a feed from the form, see it listed as the API answers
// it, run it, see the run's files and download them (signed links, no token),
// pause and resume, delete; a bad filter shows the server's code and message
// and creates nothing; another user's feed never shows. axe finds nothing to
// fix on the page, light or dark.
import { afterAll, beforeAll, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import type { Browser, Locator, Page } from "playwright-core";
import { parseCsv } from "../exports/support.ts";
import { axeViolations } from "../support/axe.ts";
import { launchChromium, signedInPage } from "../support/browser.ts";
import { createUser, useTestDatabase } from "../support/db.ts";
import { signTestToken, startServer, type RunningServer } from "../support/server.ts";

const ARTIFACTS = new URL("../artifacts/", import.meta.url);
const db = useTestDatabase();
let server: RunningServer;
let browser: Browser;
let page: Page;
const alice = { id: "", token: "" };
const bob = { id: "", feedId: 0 };
let consoleErrors: string[];
let feedId: number;

interface RunJson { number: number; status: string; rows: number; finished_at: string; files: { name: string; rows: number; sha256: string }[] }
interface FeedJson { id: number; kind: string; format: string; every: string | null; paused: boolean; next_run_at: string | null; filters: Record<string, unknown>; last_run: RunJson | null }

async function api<T>(path: string): Promise<T> {
  const response = await fetch(`${server.baseUrl}${path}`, { headers: { authorization: `Bearer ${alice.token}` } });
  expect(response.status, path).toBe(200);
  return response.json() as Promise<T>;
}

const feedRow = (id: number): Locator => page.locator(`#feed-rows tr[data-feed-id="${id}"]`);
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/** Clicks a file's button: the browser fetches a signed link (no token in it) and saves the file. */
async function downloadFile(name: string, run: number): Promise<{ url: URL; content: Buffer }> {
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: `Download ${name} of run ${run}` }).click()]);
  const url = new URL(download.url());
  return { url, content: await readFile(await download.path()) };
}

beforeAll(async () => {
  [server, browser] = await Promise.all([
    startServer({ databaseUrl: db.url, args: ["start"] }),
    launchChromium(),
  ]);
  alice.id = await createUser(db.pool, { username: "feeds_alice" });
  alice.token = signTestToken(alice.id);
  bob.id = await createUser(db.pool, { username: "feeds_bob" });
  await db.pool.query("select app_private.generate_demo($1, 8)", [alice.id]);
  await db.pool.query("select app_private.generate_demo($1, 3)", [bob.id]);
  const created = await fetch(`${server.baseUrl}/api/feeds`, {
    method: "POST",
    headers: { authorization: `Bearer ${signTestToken(bob.id)}`, "content-type": "application/json" },
    body: JSON.stringify({ kind: "prompts", format: "jsonl", every: "1d" }),
  });
  expect(created.status).toBe(201);
  bob.feedId = (await created.json()).feed.id;

  ({ page, consoleErrors } = await signedInPage(browser, { token: alice.token, username: "feeds_alice" }, { acceptDownloads: true }));
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

it("creates a feed from the form and lists it as the API answers it, and no one else's", async () => {
  await page.goto(`${server.baseUrl}/#/feeds`);
  await page.getByRole("heading", { name: "Feeds", level: 1 }).waitFor();
  await page.locator("#feeds-empty").waitFor();

  await page.getByLabel("Kind").selectOption("prompt_versions");
  await page.getByLabel("Format").selectOption("csv");
  await page.getByLabel("Schedule").selectOption("1h");
  await page.getByRole("textbox", { name: "Agents" }).fill("syntax, domain");
  await page.getByRole("button", { name: "Create feed" }).click();
  await page.getByRole("status").filter({ hasText: /^Feed #\d+ \(prompt_versions, csv\) created\.$/ }).waitFor();

  const { feeds } = await api<{ feeds: FeedJson[] }>("/api/feeds");
  expect(feeds).toHaveLength(1);
  const [feed] = feeds;
  feedId = feed.id;
  expect(feed).toMatchObject({ kind: "prompt_versions", format: "csv", every: "1h", paused: false, filters: { agents: ["syntax", "domain"] } });
  const row = feedRow(feedId);
  expect(await row.locator("td[data-label=Feed] strong").textContent()).toBe(`#${feedId} prompt_versions`);
  expect(await row.locator("td[data-label=Feed] .filters").textContent()).toBe("agents: syntax, domain");
  expect(await row.locator("td[data-label=Schedule]").textContent()).toBe("Every hour");
  expect(await row.locator("td[data-label='Next run'] time").getAttribute("datetime")).toBe(feed.next_run_at);

  // Each sees their own feeds only: Bob's is not on Alice's page, nor hers on his.
  const listedOn = (on: Page) => on.locator("#feed-rows tr").evaluateAll((rows) => rows.map((r) => Number(r.getAttribute("data-feed-id"))));
  expect(await listedOn(page)).toEqual([feedId]);
  expect((await db.pool.query("select from app_public.feeds where id = $1", [bob.feedId])).rowCount).toBe(1);
  const bobs = await signedInPage(browser, { token: signTestToken(bob.id), username: "feeds_bob" });
  try {
    await bobs.page.goto(`${server.baseUrl}/#/feeds`);
    await bobs.page.locator(`#feed-rows tr[data-feed-id="${bob.feedId}"]`).waitFor();
    expect(await listedOn(bobs.page)).toEqual([bob.feedId]);
    expect(await bobs.page.locator("#feed-rows").textContent()).not.toContain("prompt_versions");
    expect(bobs.consoleErrors).toEqual([]);
  } finally {
    await bobs.page.context().close();
  }
  expect(consoleErrors).toEqual([]);
});

it("runs the feed now, shows the run and its files, and downloads them through signed links", async () => {
  await page.getByRole("button", { name: `Run now: feed #${feedId}` }).click();
  await feedRow(feedId).locator(".last-run .status.succeeded").waitFor({ timeout: 30_000 });
  const { runs } = await api<{ runs: RunJson[] }>(`/api/feeds/${feedId}/runs`);
  expect(runs.map((run) => [run.number, run.status])).toEqual([[1, "succeeded"]]);
  const [run] = runs;
  const row = feedRow(feedId);
  expect(await row.locator("td[data-label='Last run'] data").getAttribute("value")).toBe(String(run.rows));
  expect(await row.locator("td[data-label='Last run'] time").getAttribute("datetime")).toBe(run.finished_at);

  // The runs panel: the run, its files and its manifest.
  await page.locator('#feed-run-rows tr[data-run="1"][data-status="succeeded"]').waitFor();
  expect(await page.locator("#feed-runs-title").textContent()).toBe(`Runs of feed #${feedId}`);
  const shownFiles = await page.locator('#feed-run-rows tr[data-run="1"] ul.files button').allTextContents();
  expect(shownFiles).toEqual([...run.files.map((file) => file.name), "manifest.json"]);

  const { url, content } = await downloadFile("prompt_versions.csv", 1);
  expect(url.pathname).toBe(`/api/feeds/${feedId}/runs/1/files/prompt_versions.csv`);
  expect([...url.searchParams.keys()]).toEqual(["user", "as", "session", "expires", "signature"]);
  expect(sha256(content)).toBe(run.files.find((file) => file.name === "prompt_versions.csv")!.sha256);
  // The file holds Alice's versions by the two agents asked for, and nothing else.
  const { rows: expected } = await db.pool.query<{ id: string }>(
    "select id::text from app_public.prompt_versions where user_id = $1 and source in ('syntax', 'domain') order by id", [alice.id]);
  expect(expected).toHaveLength(16);
  expect(parseCsv(content).slice(1).map((line) => line[0]).sort()).toEqual(expected.map((r) => r.id).sort());

  const manifest = JSON.parse((await downloadFile("manifest.json", 1)).content.toString("utf8"));
  expect(manifest).toMatchObject({ feed: feedId, run: 1, kind: "prompt_versions", format: "csv" });
  expect(manifest.files.map((file: { name: string; sha256: string }) => [file.name, file.sha256]))
    .toEqual(run.files.map((file) => [file.name, file.sha256]));
  expect(consoleErrors).toEqual([]);
}, 60_000);

it("pauses and resumes the feed", async () => {
  await page.getByRole("button", { name: `Pause feed #${feedId}` }).click();
  await page.locator(`#feed-rows tr[data-feed-id="${feedId}"][data-paused="true"]`).waitFor();
  expect(await feedRow(feedId).locator("td[data-label='Next run']").textContent()).toBe("Paused");
  expect((await api<{ feed: FeedJson }>(`/api/feeds/${feedId}`)).feed).toMatchObject({ paused: true, next_run_at: null });

  await page.getByRole("button", { name: `Resume feed #${feedId}` }).click();
  await page.locator(`#feed-rows tr[data-feed-id="${feedId}"][data-paused="false"]`).waitFor();
  const { feed } = await api<{ feed: FeedJson }>(`/api/feeds/${feedId}`);
  expect(feed.paused).toBe(false);
  expect(await feedRow(feedId).locator("td[data-label='Next run'] time").getAttribute("datetime")).toBe(feed.next_run_at);
  expect(consoleErrors).toEqual([]);
});

it("shows the server's code and message for a bad filter or a global feed of a user, and creates nothing", async () => {
  const count = async () => (await db.pool.query("select count(*)::int as n from app_public.feeds where user_id = $1", [alice.id])).rows[0].n;
  const before = await count();
  await page.getByRole("textbox", { name: "Agents" }).fill("");
  await page.getByLabel("Created after").fill("yesterday");
  await page.getByRole("button", { name: "Create feed" }).click();
  await page.locator("#feed-form-error").waitFor();
  expect(await page.locator("#feed-form-error").textContent())
    .toBe('Could not create the feed: created_after must be a timestamp such as "2025-01-31T09:15:00Z". (PFFLT)');
  expect(await count()).toBe(before);
  // Everyone's rows: the server refuses it to a user who is not an admin (403).
  await page.getByLabel("Created after").fill("");
  await page.getByLabel("Everyone's rows").check();
  await page.getByRole("button", { name: "Create feed" }).click();
  await page.locator("#feed-form-error").filter({ hasText: "PFGLB" }).waitFor();
  expect(await page.locator("#feed-form-error").textContent())
    .toBe("Could not create the feed: Only an admin's feed may hold everyone's rows (is_global). (PFGLB)");
  await page.getByLabel("Everyone's rows").uncheck();
  expect(await count()).toBe(before);
  expect(await page.locator("#feed-rows tr").count()).toBe(1);
  consoleErrors.length = 0; // Chromium logs the 400 answer
});

it("has nothing for axe to fix, light or dark, and fits a phone", async () => {
  for (const colorScheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme });
    expect(await axeViolations(page), colorScheme).toEqual([]);
  }
  await page.emulateMedia({ colorScheme: "light" });
  await mkdir(ARTIFACTS, { recursive: true });
  for (const [name, viewport] of [["laptop", { width: 1280, height: 800 }], ["phone", { width: 390, height: 844 }]] as const) {
    await page.setViewportSize(viewport);
    expect(await page.evaluate(() => document.documentElement.scrollWidth), name).toBeLessThanOrEqual(viewport.width);
    await page.screenshot({ path: new URL(`ui-feeds-${name}.png`, ARTIFACTS).pathname, fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 800 });
});

it("deletes the feed after asking", async () => {
  page.once("dialog", (dialog) => void dialog.accept());
  await page.getByRole("button", { name: `Delete feed #${feedId}` }).click();
  await page.getByRole("status").filter({ hasText: `Feed #${feedId} deleted.` }).waitFor();
  await page.locator("#feeds-empty").waitFor();
  expect(await page.locator("#feed-runs").isHidden()).toBe(true);
  const response = await fetch(`${server.baseUrl}/api/feeds/${feedId}`, { headers: { authorization: `Bearer ${alice.token}` } });
  expect(response.status).toBe(404);
  expect(consoleErrors).toEqual([]);
});
