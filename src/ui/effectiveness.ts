// The agent effectiveness page: figures read from /api/agents/effectiveness
// (the database's view, as the caller sees it), as cards (each win rate with
// its 95% Wilson interval beside it) and bar charts.
import { getJson, SessionEnded } from "./api.ts";
import { barChart } from "./chart.ts";
import { byId, h, say } from "./dom.ts";
import { formatCount, formatRate, formatScore, formatTime, formatWholePercent } from "./format.ts";
import type { Page } from "./page.ts";
import { currentSession } from "./session.ts";

export interface Figures {
  wins: number;
  total: number;
  win_rate: number;
  win_rate_lower: number;
  win_rate_upper: number;
  avg_score: number;
}

/** A judge total is five criteria scored 0 to 10. */
const JUDGE_TOTAL_MAX = 50;

/** A figure as text, with its exact value kept machine-readable in <data>. */
function figure(term: string, value: number, text: string): HTMLElement[] {
  return [h("dt", {}, term), h("dd", {}, h("data", { value }, text))];
}

function agentCard(agent: string, figures: Figures): HTMLElement {
  return h("li", { class: "card agent", "data-agent": agent },
    h("h2", {}, agent),
    h("dl", {},
      ...figure("Wins", figures.wins, formatCount(figures.wins)),
      ...figure("Total", figures.total, formatCount(figures.total)),
      ...figure("Win rate", figures.win_rate, formatRate(figures.win_rate)),
      h("dt", {}, "95% interval"),
      h("dd", {}, h("data", { value: figures.win_rate_lower }, formatRate(figures.win_rate_lower)), " to ",
        h("data", { value: figures.win_rate_upper }, formatRate(figures.win_rate_upper))),
      ...figure("Average score", figures.avg_score, formatScore(figures.avg_score))));
}

export function effectivenessPage(): Page {
  const refresh = byId<HTMLButtonElement>("refresh");
  const cards = byId("agent-cards");
  const charts = byId("charts");
  const readAt = byId("read-at");
  const scope = byId("scope");
  const error = byId("effectiveness-error");
  const empty = byId("effectiveness-empty");

  async function load(): Promise<void> {
    refresh.disabled = true;
    refresh.setAttribute("aria-busy", "true");
    say(error, undefined);
    try {
      const { effectiveness } = await getJson<{ effectiveness: Record<string, Figures> }>("/api/agents/effectiveness");
      const read = new Date();
      const agents = Object.entries(effectiveness);
      // Agents exist from the start; a dashboard of zeros is a new user's, who needs to know how data gets in.
      empty.hidden = agents.some(([, figures]) => figures.total > 0);
      cards.replaceChildren(...agents.map(([agent, figures]) => agentCard(agent, figures)));
      charts.replaceChildren(
        barChart({
          title: "Win rate",
          bars: agents.map(([label, figures]) => ({ label, value: figures.win_rate })),
          max: 1,
          format: formatRate,
          formatTick: formatWholePercent,
          variant: "win-rate",
        }),
        barChart({
          title: `Average judge score (0 to ${JUDGE_TOTAL_MAX})`,
          bars: agents.map(([label, figures]) => ({ label, value: figures.avg_score })),
          max: JUDGE_TOTAL_MAX,
          format: formatScore,
          variant: "avg-score",
        }));
      readAt.replaceChildren("Read at ", h("time", { datetime: read.toISOString() }, formatTime(read)), ".");
      scope.textContent = currentSession()?.isAdmin ? "Figures for all users (you are an admin)." : "Your figures.";
    } catch (failure) {
      if (!(failure instanceof SessionEnded)) say(error, `Could not read the figures: ${(failure as Error).message}`);
    } finally {
      refresh.disabled = false;
      refresh.removeAttribute("aria-busy");
    }
  }

  refresh.addEventListener("click", () => void load());

  return {
    show: load,
    hide() {},
    clear() {
      cards.replaceChildren();
      charts.replaceChildren();
      readAt.replaceChildren();
      scope.textContent = "";
      empty.hidden = true;
      say(error, undefined);
    },
  };
}
