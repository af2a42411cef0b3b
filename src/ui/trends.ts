// The agent trends page: for a range of UTC days, each agent's win rate per day
// or week (/api/agents/effectiveness/series), the head-to-head table
// (/api/agents/head-to-head) and the ratings with their 95% intervals
// (/api/agents/ratings). The range is the days from (counted) to to (not counted).
import { getJson, SessionEnded } from "./api.ts";
import { byId, h, say, svg } from "./dom.ts";
import { formatCount, formatRate } from "./format.ts";
import type { Page } from "./page.ts";

interface Point { bucket_start: string; agent: string; win_rate: number; win_rate_lower: number; win_rate_upper: number; total: number }
interface Pair { agent: string; opponent: string; wins: number; losses: number; ties: number }
interface Rating { agent: string; rating: number; lower: number; upper: number }

const WIDTH = 360;
const HEIGHT = 120;
const PAD = 24;
const utcDay = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
const wholeRating = (value: number) => Math.round(value).toString();

/** One agent's win rate per bucket as a line, with its Wilson band; buckets without versions leave a gap in neither. */
function trendChart(agent: string, points: Point[]): HTMLElement {
  const x = (i: number) => PAD + (points.length > 1 ? (i * (WIDTH - 2 * PAD)) / (points.length - 1) : (WIDTH - 2 * PAD) / 2);
  const y = (rate: number) => HEIGHT - PAD - rate * (HEIGHT - 2 * PAD);
  const line = points.map((p, i) => `${x(i)},${y(p.win_rate)}`).join(" ");
  const band = [...points.map((p, i) => `${x(i)},${y(p.win_rate_upper)}`), ...points.map((p, i) => `${x(i)},${y(p.win_rate_lower)}`).reverse()].join(" ");
  const last = points.at(-1);
  const summary = last ? `${points.length} buckets from ${points[0].bucket_start} to ${last.bucket_start}; last ${formatRate(last.win_rate)} of ${formatCount(last.total)} versions` : "no buckets";
  return h("figure", { class: "card trend", "data-agent": agent },
    h("figcaption", {}, `${agent}: win rate`),
    svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": `${agent} win rate: ${summary}` },
      svg("polygon", { class: "band", points: band }),
      svg("polyline", { class: "line", points: line, fill: "none" }),
      svg("text", { x: 2, y: PAD, "dominant-baseline": "central" }, "100%"),
      svg("text", { x: 2, y: HEIGHT - PAD, "dominant-baseline": "central" }, "0%"),
      ...points.map((p, i) => svg("circle", { cx: x(i), cy: y(p.win_rate), r: 2, "data-bucket": p.bucket_start, "data-win-rate": p.win_rate },
        svg("title", {}, `${p.bucket_start}: ${formatRate(p.win_rate)} (${formatRate(p.win_rate_lower)} to ${formatRate(p.win_rate_upper)}), ${formatCount(p.total)} versions`)))));
}

function table(caption: string, headings: string[], rows: (string | number)[][], id: string): HTMLElement {
  return h("table", { id },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, ...headings.map((heading) => h("th", { scope: "col" }, heading)))),
    h("tbody", {}, ...rows.map((row) => h("tr", {}, ...row.map((cell, i) => (i === 0 ? h("th", { scope: "row" }, cell) : h("td", {}, cell)))))));
}

export function trendsPage(): Page {
  const form = byId<HTMLFormElement>("trends-form");
  const from = byId<HTMLInputElement>("trends-from");
  const to = byId<HTMLInputElement>("trends-to");
  const bucket = byId<HTMLSelectElement>("trends-bucket");
  const error = byId("trends-error");
  const charts = byId("trend-charts");
  const tables = byId("trend-tables");
  from.value ||= utcDay(-29);
  to.value ||= utcDay(1);

  async function load(): Promise<void> {
    say(error, undefined);
    form.setAttribute("aria-busy", "true");
    try {
      const range = `from=${encodeURIComponent(from.value)}&to=${encodeURIComponent(to.value)}`;
      const [{ series }, { pairs }, { ratings }] = await Promise.all([
        getJson<{ series: Point[] }>(`/api/agents/effectiveness/series?bucket=${encodeURIComponent(bucket.value)}&${range}`),
        getJson<{ pairs: Pair[] }>(`/api/agents/head-to-head?${range}`),
        getJson<{ ratings: Rating[] }>(`/api/agents/ratings?${range}`),
      ]);
      const agents = [...new Set(series.map((p) => p.agent))];
      charts.replaceChildren(...agents.map((agent) => trendChart(agent, series.filter((p) => p.agent === agent))));
      tables.replaceChildren(
        table("Ratings (Bradley-Terry, best first) with 95% intervals", ["Agent", "Rating", "95% interval"],
          ratings.map((r) => [r.agent, wholeRating(r.rating), `${wholeRating(r.lower)} to ${wholeRating(r.upper)}`]), "ratings-table"),
        table("Head to head: matches on prompts where both agents have a scored version", ["Agent", "Opponent", "Wins", "Losses", "Ties"],
          pairs.map((p) => [p.agent, p.opponent, formatCount(p.wins), formatCount(p.losses), formatCount(p.ties)]), "head-to-head-table"));
    } catch (failure) {
      if (!(failure instanceof SessionEnded)) say(error, `Could not read the trends: ${(failure as Error).message}`);
    } finally {
      form.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void load();
  });

  return {
    show: load,
    hide() {},
    clear() {
      charts.replaceChildren();
      tables.replaceChildren();
      say(error, undefined);
    },
  };
}
