// A horizontal bar chart drawn as SVG: one bar per agent, a fixed scale from 0
// to `max` with gridlines at quarters. The viewBox is about a phone's width, so
// text stays legible when the chart is scaled to fit.
import { h, svg } from "./dom.ts";

export interface Bar {
  label: string;
  value: number;
}

const WIDTH = 360;
const LABEL_WIDTH = 96;
const VALUE_WIDTH = 56;
const ROW_HEIGHT = 30;
const BAR_HEIGHT = 18;
const AXIS_HEIGHT = 22;
const MAX_LABEL_CHARS = 13;

export interface BarChartOptions {
  title: string;
  bars: Bar[];
  max: number;
  format: (value: number) => string;
  /** For the axis; defaults to `format`. */
  formatTick?: (value: number) => string;
  /** A class that picks the bars' colour. */
  variant: string;
}

export function barChart(options: BarChartOptions): HTMLElement {
  const { title, bars, max, format, formatTick = format, variant } = options;
  const plotWidth = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
  const height = bars.length * ROW_HEIGHT + AXIS_HEIGHT;
  const x = (value: number) => LABEL_WIDTH + (Math.min(Math.max(value, 0), max) / max) * plotWidth;

  const grid = [0, 0.25, 0.5, 0.75, 1].map((fraction) => {
    const at = x(fraction * max);
    return svg("g", { class: "grid" },
      svg("line", { x1: at, x2: at, y1: 0, y2: bars.length * ROW_HEIGHT }),
      svg("text", { x: at, y: height - 6, "text-anchor": "middle" }, formatTick(fraction * max)));
  });

  const rows = bars.map((bar, index) => {
    const top = index * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2;
    const label = bar.label.length > MAX_LABEL_CHARS ? `${bar.label.slice(0, MAX_LABEL_CHARS - 1)}…` : bar.label;
    return svg("g", { class: "bar" },
      svg("title", {}, `${bar.label}: ${format(bar.value)}`),
      svg("text", { class: "label", x: LABEL_WIDTH - 8, y: top + BAR_HEIGHT / 2, "text-anchor": "end", "dominant-baseline": "central" }, label),
      svg("rect", { x: LABEL_WIDTH, y: top, width: Math.max(x(bar.value) - LABEL_WIDTH, 0), height: BAR_HEIGHT, rx: 3 }),
      svg("text", { class: "value", x: WIDTH - 4, y: top + BAR_HEIGHT / 2, "text-anchor": "end", "dominant-baseline": "central" }, format(bar.value)));
  });

  const summary = bars.map((bar) => `${bar.label} ${format(bar.value)}`).join(", ");
  return h("figure", { class: `chart ${variant}` },
    h("figcaption", {}, title),
    svg("svg", { viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-label": `${title}: ${summary}` },
      ...grid, ...rows));
}
