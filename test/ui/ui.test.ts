// The web UI in Debian's Chromium against a real `prompter start` (gateway and
// worker) and the test file's database: sign-in, the effectiveness dashboard,
// exports from click to download, isolation between users, sign-out and 401s;
// axe finds nothing to fix on the sign-in, dashboard and export pages.
import { afterAll, beforeAll, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { gunzipSync } from "node:zlib";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { expectedExport } from "../exports/oracle.ts";
import { parseCsv, unzip } from "../exports/support.ts";
import { axeViolations } from "../support/axe.ts";
import { launchChromium } from "../support/browser.ts";
import { expectDashboardToShow, type Figures } from "./dashboard.ts";
import { createUser, useTestDatabase } from "../support/db.ts";
import { signTestToken, startServer, type RunningServer } from "../support/server.ts";

const ARTIFACTS = new URL("../artifacts/", import.meta.url);
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
/** Chromium's console line for a response with an error status, which some tests provoke on purpose. */
const failedLoad = (status: number) => new RegExp(`^Failed to load resource: the server responded with a status of ${status}\\b`);

const db = useTestDatabase();
let server: RunningServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let consoleErrors: string[] = [];

const alice = { username: `alice_${randomBytes(3).toString("hex")}`, password: "correct horse battery", id: "", token: "" };
const bob = { id: "", marker: `bob-only-${randomBytes(4).toString("hex")}`, exportId: 0, fileName: "" };


async function openContext(): Promise<{ context: BrowserContext; page: Page }> {
  const opened = await browser.newContext({ viewport: LAPTOP, locale: "en-US", timezoneId: "UTC", acceptDownloads: true });
  const openedPage = await opened.newPage();
  openedPage.setDefaultTimeout(15_000);
  openedPage.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  openedPage.on("pageerror", (error) => consoleErrors.push(`page error: ${error.message}`));
  return { context: opened, page: openedPage };
}

/** The console errors since the last call, except those `expected` (each must then have happened). */
function takeConsoleErrors(expected: RegExp[] = []): string[] {
  const errors = consoleErrors;
  consoleErrors = [];
  for (const pattern of expected) expect(errors.some((error) => pattern.test(error)), `a console line matching ${pattern}`).toBe(true);
  return errors.filter((error) => !expected.some((pattern) => pattern.test(error)));
}

async function api<T>(path: string, token: string): Promise<T> {
  const response = await fetch(`${server.baseUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
  expect(response.status, path).toBe(200);
  return response.json() as Promise<T>;
}

/** Clicks Refresh and waits until the figures have been read again. */
async function refreshDashboard(): Promise<void> {
  const before = await page.locator("#read-at time").getAttribute("datetime");
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.waitForFunction((previous) => {
    const time = document.querySelector("#read-at time")?.getAttribute("datetime");
    return time && time !== previous && !document.querySelector("#refresh")?.hasAttribute("aria-busy");
  }, before);
}

async function signIn(username: string, password: string): Promise<void> {
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  // Enter in the password field submits with the form's first button, "Sign in".
  await page.getByLabel("Password").press("Enter");
}

async function screenshots(name: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  for (const [width, viewport] of [["laptop", LAPTOP], ["phone", PHONE]] as const) {
    await page.setViewportSize(viewport);
    // Nothing may be wider than the screen: a phone never scrolls sideways.
    expect(await page.evaluate(() => document.documentElement.scrollWidth), `${name} at ${width} width`).toBeLessThanOrEqual(viewport.width);
    await page.screenshot({ path: new URL(`ui-${name}-${width}.png`, ARTIFACTS).pathname, fullPage: true });
  }
  await page.setViewportSize(LAPTOP);
}

const historyRow = (id: number | string): Locator => page.locator(`#history-rows tr[data-export-id="${id}"]`);

/** Clicks an export button and returns the id of the export that then heads the history. */
async function startExport(button: string): Promise<number> {
  const before = await page.locator("#history-rows tr").evaluateAll((rows) => rows.map((row) => row.getAttribute("data-export-id")));
  await page.getByRole("button", { name: button, exact: true }).click();
  const first = page.locator("#history-rows tr").first();
  await page.waitForFunction((known) => {
    const id = document.querySelector("#history-rows tr")?.getAttribute("data-export-id");
    return id && !known.includes(id);
  }, before);
  return Number(await first.getAttribute("data-export-id"));
}

async function waitForStatus(id: number, status: string): Promise<Locator> {
  const row = page.locator(`#history-rows tr[data-export-id="${id}"][data-status="${status}"]`);
  await row.waitFor();
  return row;
}

/** Clicks Download: the browser itself fetches a signed link (no token in it) and saves the file. */
async function downloadFrom(row: Locator): Promise<Buffer> {
  const [download] = await Promise.all([page.waitForEvent("download"), row.getByRole("button", { name: /^Download / }).click()]);
  const url = new URL(download.url());
  expect(url.pathname).toMatch(/^\/api\/exports\/\d+\/download$/);
  expect([...url.searchParams.keys()]).toEqual(["user", "as", "session", "expires", "signature"]);
  expect(Number(url.searchParams.get("expires")) * 1000 - Date.now()).toBeLessThanOrEqual(60_000);
  return readFile(await download.path());
}

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
const asAlice = () => ({ role: "app_user" as const, userId: alice.id });

beforeAll(async () => {
  [server, browser] = await Promise.all([
    startServer({ databaseUrl: db.url, args: ["start"] }),
    launchChromium(),
  ]);
  // Bob: data, a prompt only he has, and a finished export of his own.
  bob.id = await createUser(db.pool);
  await db.pool.query("select app_private.generate_demo($1, 7)", [bob.id]);
  await db.pool.query("insert into app_public.prompts (user_id, text) values ($1, $2)", [bob.id, bob.marker]);
  const response = await fetch(`${server.baseUrl}/api/storage/export-multi-agent?wait=true`, {
    method: "POST",
    headers: { authorization: `Bearer ${signTestToken(bob.id)}` },
  });
  const body = await response.json();
  expect(body).toMatchObject({ success: true, status: "succeeded" });
  bob.exportId = body.export_id;
  bob.fileName = body.export.file_name;
  ({ context, page } = await openContext());
});

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await server?.stop();
});

it("serves the page and its assets from the gateway, with a CSP that allows no inline script or other origin", async () => {
  const response = await fetch(`${server.baseUrl}/`);
  const html = await response.text();
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
  const csp = response.headers.get("content-security-policy") ?? "";
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("script-src 'self';");
  expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:|\*/);
  expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/); // no inline script
  expect(html).not.toMatch(/(src|href)="(https?:)?\/\//); // nothing from another origin

  const script = /<script type="module" src="(\/assets\/app\.[0-9a-f]{12}\.js)">/.exec(html)?.[1];
  expect(script).toMatch(/^\/assets\/app\.[0-9a-f]{12}\.js$/);
  const asset = await fetch(`${server.baseUrl}${script}`);
  expect(asset.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
  expect(asset.headers.get("cache-control")).toContain("immutable");
  await asset.arrayBuffer();
  // The page is revalidated by its ETag. (fetch adds no-cache to conditional requests, so ask with node:http.)
  const { request } = await import("node:http");
  const status = await new Promise<number | undefined>((resolve, reject) => {
    request(`${server.baseUrl}/`, { headers: { "if-none-match": response.headers.get("etag")! } }, (answer) => {
      answer.resume();
      resolve(answer.statusCode);
    }).on("error", reject).end();
  });
  expect(status).toBe(304);
});

it("registers a new user, whose dashboard shows the API's figures, and again after new data and Refresh", async () => {
  await page.goto(`${server.baseUrl}/`);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await page.getByLabel("Username").fill(alice.username);
  await page.getByLabel("Password").fill(alice.password);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.locator("#agent-cards [data-agent]").first().waitFor();

  alice.token = (await page.evaluate(() => sessionStorage.getItem("prompter.token")))!;
  alice.id = (await db.pool.query("select id from app_public.users where username = $1", [alice.username])).rows[0].id;
  const empty = await api<{ effectiveness: Record<string, Figures> }>("/api/agents/effectiveness", alice.token);
  expect(Object.values(empty.effectiveness).every((figures) => figures.total === 0)).toBe(true);
  await expectDashboardToShow(empty.effectiveness, page);
  // A dashboard of zeros says how data gets in.
  const howTo = page.locator("#effectiveness-empty");
  await howTo.waitFor();
  expect(await howTo.textContent()).toMatch(/createPrompt[\s\S]*npx prompter demo/);
  expect(await page.locator("#account-name").textContent()).toBe(alice.username);

  await db.pool.query("select app_private.generate_demo($1, 30)", [alice.id]);
  await refreshDashboard();
  const seeded = await api<{ effectiveness: Record<string, Figures> }>("/api/agents/effectiveness", alice.token);
  // Alice's own 30 prompts, one version each per agent: none of Bob's.
  expect(Object.values(seeded.effectiveness).map((figures) => figures.total)).toEqual([30, 30, 30]);
  await expectDashboardToShow(seeded.effectiveness, page);
  expect(await howTo.isHidden()).toBe(true);
  expect(await page.locator("#scope").textContent()).toBe("Your figures.");
  for (const colorScheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme });
    expect(await axeViolations(page), `dashboard, ${colorScheme}`).toEqual([]);
  }
  await page.emulateMedia({ colorScheme: "light" });
  await screenshots("dashboard");
  expect(takeConsoleErrors()).toEqual([]);
});

it("signs out, refuses a wrong password with a message, and signs in with the keyboard", async () => {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  expect(await page.locator("#notice").textContent()).toBe("You have signed out.");
  expect(await axeViolations(page), "sign-in").toEqual([]);
  expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  expect(await page.locator("[data-agent], #charts svg").count()).toBe(0);

  await signIn(alice.username, "not the password");
  await page.getByRole("alert").filter({ hasText: "Wrong username or password." }).waitFor();
  expect(await page.evaluate(() => sessionStorage.getItem("prompter.token"))).toBeNull();

  await page.getByLabel("Password").fill(alice.password);
  await page.keyboard.press("Enter");
  await page.locator("#agent-cards [data-agent]").first().waitFor();
  // Tab order from the page heading reaches the Refresh button, a real button.
  expect(await page.evaluate(() => document.activeElement?.id)).toBe("effectiveness-title");
  await page.keyboard.press("Tab");
  expect(await page.evaluate(() => document.activeElement?.id)).toBe("refresh");
  expect(takeConsoleErrors()).toEqual([]);
});

it("runs exports from their buttons, shows progress and outcome, and downloads what the database holds", async () => {
  await page.getByRole("link", { name: "Export data" }).click();
  await page.getByRole("heading", { name: "Export data" }).waitFor();

  // Multi-agent log, plain CSV (REST): its file is exactly Alice's rows of the export's SELECT.
  const logId = await startExport("Multi-agent log");
  const logRow = await waitForStatus(logId, "succeeded");
  const { export: logExport } = await api<{ export: { rows: number; bytes: number; sha256: string; stale: boolean } }>(`/api/exports/${logId}`, alice.token);
  expect(await logRow.locator("td[data-label=Records] data").getAttribute("value")).toBe(String(logExport.rows));
  expect(await logRow.locator("td[data-label=Size] data").getAttribute("value")).toBe(String(logExport.bytes));
  expect(await logRow.locator("td[data-label=Stale]").textContent()).toBe("no");
  expect(await logRow.locator("td[data-label='Time taken']").textContent()).toMatch(/^\d+(\.\d)? (ms|s)$/);
  expect(await logRow.locator(".requested-by").textContent()).toBe(`by ${alice.username}`);
  const logFile = await downloadFrom(logRow);
  expect(sha256(logFile)).toBe(logExport.sha256);
  const logCsv = parseCsv(logFile);
  expect(logCsv).toEqual((await expectedExport(db.pool, asAlice(), "multi_agent_log")).get("multi_agent_log.csv"));
  const alicesPrompts = await db.pool.query<{ id: string }>("select id from app_public.prompts where user_id = $1 order by id", [alice.id]);
  expect(logCsv.slice(1).map((row) => row[0])).toEqual(alicesPrompts.rows.map((row) => row.id));
  expect(logFile.toString()).not.toContain(bob.marker);

  // Judge scores, gzip and spreadsheet-safe (GraphQL): a gzipped CSV with a BOM.
  await page.getByLabel("Compress (gzip)").check();
  await page.getByLabel("Spreadsheet-safe (Excel)").check();
  const scoresId = await startExport("Judge scores");
  const scoresRow = await waitForStatus(scoresId, "succeeded");
  expect(await scoresRow.locator(".options").textContent()).toBe("gzip, excel");
  const scoresFile = gunzipSync(await downloadFrom(scoresRow));
  expect([...scoresFile.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
  expect(parseCsv(scoresFile.subarray(3))).toEqual(
    (await expectedExport(db.pool, asAlice(), "judge_scores", { excel: true })).get("judge_scores.csv"));

  // All (zip), held at its last part by a lock on what only that part reads: the
  // row shows "running" and a progress bar at the rows written so far.
  await page.getByLabel("Compress (gzip)").uncheck();
  await page.getByLabel("Spreadsheet-safe (Excel)").uncheck();
  const locker = await db.pool.connect();
  let allId: number;
  try {
    await locker.query("begin");
    await locker.query("lock table app_hidden.agent_stats in access exclusive mode");
    allId = await startExport("All (zip)");
    const written = 30 + 90 + 90; // multi_agent_log, prompt_versions and judge_scores rows
    const expected = written + 3; // and one row per agent
    await page.waitForFunction(({ id, rows }) => {
      const progress = document.querySelector<HTMLProgressElement>(`#history-rows tr[data-export-id="${id}"][data-status=running] progress`);
      return progress?.value === rows;
    }, { id: allId, rows: written });
    const running = historyRow(allId);
    expect(await running.locator("progress").getAttribute("max")).toBe(String(expected));
    expect(await running.locator(".progress-text").textContent()).toBe(`${written} of about ${expected} rows`);
    const { rows } = await db.pool.query("select progress_rows from app_public.exports where id = $1", [allId]);
    expect(rows[0].progress_rows).toBe(String(written));
    await screenshots("exports");
  } finally {
    await locker.query("rollback");
    locker.release();
  }
  const allRow = await waitForStatus(allId, "succeeded");
  expect(await page.getByRole("status").filter({ hasText: "Export #" }).textContent()).toBe(`Export #${allId} All (zip): succeeded.`);
  const zip = await downloadFrom(allRow);
  const { export: allExport } = await api<{ export: { sha256: string } }>(`/api/exports/${allId}`, alice.token);
  expect(sha256(zip)).toBe(allExport.sha256);
  const entries = unzip(zip);
  expect([...entries.keys()]).toEqual(["multi_agent_log.csv", "prompt_versions.csv", "judge_scores.csv", "agent_effectiveness.csv"]);
  // Unchanged data: the zip's log is byte for byte the log exported before.
  expect(entries.get("multi_agent_log.csv")).toEqual(logFile);

  // New data makes the earlier exports stale; the history says so when read again.
  await db.pool.query("insert into app_public.prompts (user_id, text) values ($1, 'one more prompt')", [alice.id]);
  await page.getByRole("link", { name: "Agent effectiveness" }).click();
  await page.getByRole("link", { name: "Export data" }).click();
  await page.waitForFunction((id) => document.querySelector(`#history-rows tr[data-export-id="${id}"] td[data-label=Stale]`)?.textContent === "yes", logId);
  expect(await historyRow(allId).locator("td[data-label=Stale]").textContent()).toBe("yes");
  expect(await axeViolations(page), "exports").toEqual([]);
  expect(takeConsoleErrors()).toEqual([]);
});

it("shows a failed attempt's error while the export waits for its retry, then its success", async () => {
  // The worker cannot write while its export directory is a plain file.
  const aside = `${server.exportDir}.aside`;
  await rename(server.exportDir, aside);
  await writeFile(server.exportDir, "");
  let id: number;
  try {
    id = await startExport("Agent effectiveness");
    // The row shows the error the worker recorded, as the export waits for its retry.
    await historyRow(id).locator(".error").waitFor();
    await expect.poll(async () => {
      const { rows } = await db.pool.query("select status, error_message from app_public.exports where id = $1", [id]);
      const shown = { status: await historyRow(id).getAttribute("data-status"), error: await historyRow(id).locator(".error").textContent() };
      return shown.status === "queued" && shown.error === rows[0].error_message && rows[0].status === "queued";
    }, { timeout: 10_000 }).toBe(true);
  } finally {
    await rm(server.exportDir);
    await rename(aside, server.exportDir);
  }
  const row = await waitForStatus(id, "succeeded");
  expect(await row.locator(".error").count()).toBe(0);
  expect(takeConsoleErrors()).toEqual([]);
});

it("says clearly when the export rate limit is reached", async () => {
  const { rows } = await db.pool.query(
    "select count(*)::int as recent from app_public.exports where user_id = $1 and requested_at > now() - interval '1 minute'",
    [alice.id]);
  for (let i = rows[0].recent; i < 10; i++) {
    const response = await fetch(`${server.baseUrl}/api/storage/export-multi-agent`, {
      method: "POST",
      headers: { authorization: `Bearer ${alice.token}` },
    });
    expect(response.status).toBe(202);
  }
  const exportCount = async () => (await db.pool.query("select count(*)::int as total from app_public.exports")).rows[0].total;
  const before = await exportCount();
  const limited = /^Rate limit reached: Too many exports: at most 10 per minute\. Try again in \d+ seconds\.$/;
  // Through GraphQL and through REST (429 both, the GraphQL answer's body a GraphQL response): the same message.
  await page.getByRole("button", { name: "Prompt versions", exact: true }).click();
  await page.locator("#export-error").filter({ hasText: limited }).waitFor();
  await page.getByRole("button", { name: "All (zip)", exact: true }).click();
  await page.waitForFunction(() => !document.querySelector("#export-form button:disabled"));
  expect(await page.locator("#export-error").textContent()).toMatch(limited);
  expect(await exportCount()).toBe(before);
  expect(takeConsoleErrors([failedLoad(429)])).toEqual([]);
});

it("never shows another user's exports, files or figures", async () => {
  await page.reload();
  await page.locator("#history-rows tr").first().waitFor();
  const ids = await page.locator("#history-rows tr").evaluateAll((rows) => rows.map((row) => Number(row.getAttribute("data-export-id"))));
  const own = await db.pool.query("select id from app_public.exports where user_id = $1 order by id desc", [alice.id]);
  expect(ids).toEqual(own.rows.map((row) => Number(row.id)));
  expect(ids).not.toContain(bob.exportId);
  const html = await page.content();
  expect(html).not.toContain(bob.fileName);
  expect(html).not.toContain(bob.marker);

  // An admin, in a tab of their own, sees everyone's figures.
  const adminId = await createUser(db.pool, { admin: true });
  const admin = await openContext();
  try {
    const token = signTestToken(adminId, { admin: true });
    await admin.context.addInitScript((value) => sessionStorage.setItem("prompter.token", value), token);
    await admin.page.goto(`${server.baseUrl}/`);
    await admin.page.locator("#agent-cards [data-agent]").first().waitFor();
    const global = await api<{ effectiveness: Record<string, Figures> }>("/api/agents/effectiveness", token);
    expect(Object.values(global.effectiveness).map((figures) => figures.total)).toEqual([37, 37, 37]);
    await expectDashboardToShow(global.effectiveness, admin.page);
    expect(await admin.page.locator("#scope").textContent()).toBe("Figures for all users (you are an admin).");
  } finally {
    await admin.context.close();
  }
  expect(takeConsoleErrors()).toEqual([]);
});

it("goes back to sign-in with a message when the API answers 401", async () => {
  await page.getByRole("link", { name: "Agent effectiveness" }).click();
  await page.locator("#agent-cards [data-agent]").first().waitFor();
  const expired = signTestToken(alice.id, { expiresInSeconds: -60 });
  await page.evaluate((token) => sessionStorage.setItem("prompter.token", token), expired);
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  expect(await page.locator("#notice").textContent()).toBe("Your session has ended: The token has expired; sign in again.");
  expect(await page.evaluate(() => sessionStorage.getItem("prompter.token"))).toBeNull();
  expect(await page.locator("[data-agent], #history-rows tr").count()).toBe(0);
  expect(takeConsoleErrors([failedLoad(401)])).toEqual([]);
});

it("changes the password on the account page (ending older sessions) and signs out everywhere", async () => {
  await signIn(alice.username, alice.password);
  await page.locator("#agent-cards [data-agent]").first().waitFor();
  const before = (await page.evaluate(() => sessionStorage.getItem("prompter.token")))!;
  await page.getByRole("link", { name: "Account" }).click();
  await page.getByRole("heading", { name: "Change password" }).waitFor();
  const newPassword = "a brand new password";
  await page.getByLabel("Current password", { exact: true }).fill(alice.password);
  await page.getByLabel("New password", { exact: true }).fill(newPassword);
  await page.getByLabel("New password again", { exact: true }).fill(newPassword);
  await page.getByRole("button", { name: "Change password" }).click();
  await page.getByRole("status").filter({ hasText: "Your password is changed." }).waitFor();
  const after = (await page.evaluate(() => sessionStorage.getItem("prompter.token")))!;
  expect(after).not.toBe(before);
  const statusWith = async (token: string) =>
    (await fetch(`${server.baseUrl}/api/exports`, { headers: { authorization: `Bearer ${token}` } })).status;
  expect(await statusWith(before)).toBe(401);
  expect(await statusWith(after)).toBe(200);

  await page.getByRole("button", { name: "Sign out everywhere" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  expect(await page.locator("#notice").textContent()).toBe("You have signed out everywhere.");
  expect(await statusWith(after)).toBe(401);
  expect(await page.locator("#current-password").count()).toBe(0);
  expect(takeConsoleErrors()).toEqual([]);
});
