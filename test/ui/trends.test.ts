// The agent trends page in Debian's Chromium: the range picker, a win-rate
// trend per agent, the head-to-head table and the ratings with their
// intervals, each as the REST API answers the signed-in user; a bad range shows
// the server's message; axe finds nothing to fix; the page fits a phone.
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { axeViolations } from "../support/axe.ts";
import { launchChromium, signedInPage } from "../support/browser.ts";
import { createUser, useTestDatabase } from "../support/db.ts";
import { signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
let browser: Browser;
let page: Page;
let token: string;
let consoleErrors: string[];
const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

async function api<T>(path: string): Promise<T> {
  const response = await fetch(`${server.baseUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
  expect(response.status, path).toBe(200);
  return response.json() as Promise<T>;
}

beforeAll(async () => {
  [server, browser] = await Promise.all([
    startServer({ databaseUrl: db.url }),
    launchChromium(),
  ]);
  const user = await createUser(db.pool, { username: "trends_user" });
  await db.pool.query("select app_private.generate_demo($1, 9)", [user]);
  await db.pool.query("update app_public.prompts set created_at = now() - interval '4 days' where user_id = $1 and id % 2 = 0", [user]);
  await db.pool.query("update app_public.prompt_versions set created_at = now() - interval '4 days' where user_id = $1 and id % 2 = 0", [user]);
  token = signTestToken(user);
  ({ page, consoleErrors } = await signedInPage(browser, { token, username: "trends_user" }));
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

/** Waits for the figures of the form's range to be on the page. */
async function shown() {
  await page.waitForFunction(() => !document.querySelector("#trends-form")?.hasAttribute("aria-busy") && document.querySelector("#ratings-table"));
}

it("shows each agent's trend, the head-to-head table and the ratings with intervals, as the API answers them", async () => {
  await page.goto(`${server.baseUrl}/#/trends`);
  await shown();
  const from = day(-29);
  const to = day(1);
  expect(await page.getByLabel("From (first day counted, UTC)").inputValue()).toBe(from);
  expect(await page.getByLabel("To (first day not counted)").inputValue()).toBe(to);

  const { series } = await api<{ series: { agent: string; bucket_start: string; win_rate: number }[] }>(`/api/agents/effectiveness/series?bucket=day&from=${from}&to=${to}`);
  const agents = [...new Set(series.map((p) => p.agent))];
  expect(await page.locator("figure.trend").evaluateAll((figures) => figures.map((f) => (f as HTMLElement).dataset.agent))).toEqual(agents);
  for (const agent of agents) {
    const points = await page.locator(`figure.trend[data-agent="${agent}"] circle`).evaluateAll((circles) =>
      circles.map((c) => ({ bucket_start: c.getAttribute("data-bucket"), win_rate: Number(c.getAttribute("data-win-rate")) })));
    expect(points).toEqual(series.filter((p) => p.agent === agent).map(({ bucket_start, win_rate }) => ({ bucket_start, win_rate })));
  }

  const { ratings } = await api<{ ratings: { agent: string; rating: number; lower: number; upper: number }[] }>(`/api/agents/ratings?from=${from}&to=${to}`);
  expect(ratings.length).toBeGreaterThan(1);
  const cells = (table: string) => page.locator(`${table} tbody tr`).evaluateAll((rows) => rows.map((row) => Array.from(row.children).map((cell) => cell.textContent)));
  expect(await cells("#ratings-table")).toEqual(ratings.map((r) => [r.agent, String(Math.round(r.rating)), `${Math.round(r.lower)} to ${Math.round(r.upper)}`]));
  const { pairs } = await api<{ pairs: { agent: string; opponent: string; wins: number; losses: number; ties: number }[] }>(`/api/agents/head-to-head?from=${from}&to=${to}`);
  expect(await cells("#head-to-head-table")).toEqual(pairs.map((p) => [p.agent, p.opponent, String(p.wins), String(p.losses), String(p.ties)]));

  // Weekly buckets of a narrower range.
  await page.getByLabel("From (first day counted, UTC)").fill(day(-6));
  await page.getByLabel("Per").selectOption("week");
  await page.getByRole("button", { name: "Show" }).click();
  await shown();
  const weekly = await api<{ series: { agent: string; bucket_start: string }[] }>(`/api/agents/effectiveness/series?bucket=week&from=${day(-6)}&to=${to}`);
  await page.waitForFunction((n) => document.querySelectorAll("figure.trend circle").length === n, weekly.series.length);

  // Nothing for axe to fix, light or dark.
  for (const colorScheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme });
    expect(await axeViolations(page), colorScheme).toEqual([]);
  }
  await page.emulateMedia({ colorScheme: "light" });

  // No page is wider than a phone.
  await page.setViewportSize({ width: 390, height: 844 });
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  expect(consoleErrors).toEqual([]);
}, 60_000);

it("says what is wrong with a range that starts after it ends", async () => {
  await page.getByLabel("From (first day counted, UTC)").fill(day(3));
  await page.getByLabel("To (first day not counted)").fill(day(1));
  await page.getByRole("button", { name: "Show" }).click();
  await page.locator("#trends-error").waitFor();
  expect(await page.locator("#trends-error").textContent()).toMatch(/^Could not read the trends: The range starts .* after it ends/);
  consoleErrors.length = 0;
});
