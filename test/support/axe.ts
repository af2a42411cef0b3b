// axe-core (Deque's accessibility rules, WCAG 2.1 A and AA and its best
// practices) run in the page under test. The page's CSP allows no inline
// script, so axe goes in through the DevTools protocol (page.evaluate), which
// CSP does not govern, rather than a <script> tag.
import axe from "axe-core";
import type { Page } from "playwright-core";

const TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"];

/** Each rule the shown page breaks, with the elements that break it (empty when the page is clean). */
export async function axeViolations(page: Page): Promise<{ rule: string; help: string; targets: string[] }[]> {
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(axe.source);
  return page.evaluate(async (tags) => {
    const { violations } = await (window as unknown as { axe: typeof axe }).axe.run(document, { runOnly: { type: "tag", values: tags } });
    return violations.map((violation) => ({
      rule: violation.id,
      help: violation.help,
      targets: violation.nodes.map((node) => node.target.join(" ")),
    }));
  }, TAGS);
}
