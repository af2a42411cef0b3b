// What the effectiveness dashboard shows, read from the page, against the
// figures the API answered (test/ui/ui.test.ts).
import { expect } from "vitest";
import type { Page } from "playwright-core";
import type { Figures } from "../../src/ui/effectiveness.ts";

export type { Figures };

/** What the cards say: for each agent and figure, the exact values (<data value>) and the text shown. */
async function dashboardFigures(on: Page): Promise<Record<string, Record<string, { value: number[]; text: string }>>> {
  return on.$$eval("#agent-cards [data-agent]", (cards) =>
    Object.fromEntries(cards.map((card) => [
      (card as HTMLElement).dataset.agent,
      Object.fromEntries(Array.from(card.querySelectorAll("dt")).map((term) => {
        const figure = term.nextElementSibling!;
        return [term.textContent, { value: Array.from(figure.querySelectorAll("data"), (data) => Number(data.value)), text: figure.textContent }];
      })),
    ])));
}

export async function expectDashboardToShow(effectiveness: Record<string, Figures>, on: Page): Promise<void> {
  const percent = new Intl.NumberFormat("en-US", { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const score = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const shown = await dashboardFigures(on);
  expect(Object.keys(shown)).toEqual(Object.keys(effectiveness));
  for (const [agent, figures] of Object.entries(effectiveness)) {
    expect(shown[agent], agent).toEqual({
      Wins: { value: [figures.wins], text: String(figures.wins) },
      Total: { value: [figures.total], text: String(figures.total) },
      "Win rate": { value: [figures.win_rate], text: percent.format(figures.win_rate) },
      "95% interval": { value: [figures.win_rate_lower, figures.win_rate_upper],
        text: `${percent.format(figures.win_rate_lower)} to ${percent.format(figures.win_rate_upper)}` },
      "Average score": { value: [figures.avg_score], text: score.format(figures.avg_score) },
    });
  }
  // One bar per agent in each chart, labelled with the same figures.
  const bars = async (chart: string) => on.locator(`figure.${chart} .bar title`).allTextContents();
  expect(await bars("win-rate")).toEqual(Object.entries(effectiveness).map(([agent, f]) => `${agent}: ${percent.format(f.win_rate)}`));
  expect(await bars("avg-score")).toEqual(Object.entries(effectiveness).map(([agent, f]) => `${agent}: ${score.format(f.avg_score)}`));
}
