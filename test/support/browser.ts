// Debian's Chromium for the web UI's tests (never a downloaded browser), and a
// page signed in the way the UI keeps a session (the tab's sessionStorage),
// whose console errors the test reads.
import { chromium, type Browser, type BrowserContextOptions, type Page } from "playwright-core";

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
}

export async function signedInPage(
  browser: Browser,
  session: { token: string; username: string },
  options: BrowserContextOptions = {},
): Promise<{ page: Page; consoleErrors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "en-US", timezoneId: "UTC", ...options });
  await context.addInitScript(([token, username]) => {
    sessionStorage.setItem("prompter.token", token);
    sessionStorage.setItem("prompter.username", username);
  }, [session.token, session.username]);
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const consoleErrors: string[] = [];
  page.on("console", (message) => { if (message.type() === "error") consoleErrors.push(message.text()); });
  page.on("pageerror", (error) => consoleErrors.push(`page error: ${error.message}`));
  return { page, consoleErrors };
}
