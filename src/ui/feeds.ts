// The feeds page: create a feed (kind, format, schedule, filters and options as
// the API takes them: the server checks them and its code and message are
// shown), and the caller's feeds with their last and next run; pause, resume,
// run now, delete, and each run's files. Polled every second while a run is
// queued or running.
import { ApiError, deleteResource, getJson, postJson, SessionEnded, whileBusy } from "./api.ts";
import { byId, cell, h, say } from "./dom.ts";
import { feedRuns, runIsActive, statusText, type RunJson } from "./feed-runs.ts";
import { formatCount, formatTime } from "./format.ts";
import type { Page } from "./page.ts";
import { poller } from "./poller.ts";

interface FeedJson {
  id: number;
  kind: string;
  format: string;
  options: Record<string, boolean>;
  every: string | null;
  filters: Record<string, unknown>;
  is_global: boolean;
  paused: boolean;
  next_run_at: string | null;
  last_run: RunJson | null;
}

const SCHEDULES: Record<string, string> = { "20m": "Every 20 minutes", "1h": "Every hour", "1d": "Every day", "1w": "Every week" };

/** What failed, in the API's words: its message and its code. */
function explain(what: string, failure: unknown): string {
  const error = failure as Error;
  return `${what}: ${error.message}${failure instanceof ApiError ? ` (${failure.code})` : ""}`;
}

const time = (iso: string) => h("time", { datetime: iso }, formatTime(new Date(iso)));

function describeFilters(filters: Record<string, unknown>): string {
  return Object.entries(filters).map(([name, value]) => `${name}: ${Array.isArray(value) ? value.join(", ") : String(value)}`).join("; ");
}

export function feedsPage(): Page {
  const form = byId<HTMLFormElement>("feed-form");
  const formError = byId("feed-form-error");
  const error = byId("feeds-error");
  const announcement = byId("feeds-status");
  const rowsBody = byId("feed-rows");
  const empty = byId("feeds-empty");
  const runs = feedRuns((message) => say(error, message));
  const field = (id: string) => byId<HTMLInputElement>(id);
  let latestRead = 0;

  /** The form as the API takes it: only what was filled in; the server says what is wrong. */
  function feedFromForm(): Record<string, unknown> {
    const filters: Record<string, unknown> = {};
    const after = field("feed-created-after").value.trim();
    const before = field("feed-created-before").value.trim();
    const agents = field("feed-agents").value.split(",").map((name) => name.trim()).filter(Boolean);
    if (after) filters.created_after = after;
    if (before) filters.created_before = before;
    if (agents.length) filters.agents = agents;
    const options: Record<string, boolean> = {};
    if (field("feed-gzip").checked) options.gzip = true;
    if (field("feed-excel").checked) options.excel = true;
    const every = byId<HTMLSelectElement>("feed-every").value;
    return {
      kind: byId<HTMLSelectElement>("feed-kind").value,
      format: byId<HTMLSelectElement>("feed-format").value,
      every: every || null,
      filters,
      options,
      is_global: field("feed-global").checked,
    };
  }

  function actionButton(feed: FeedJson, action: string, text: string, label: string): HTMLElement {
    return h("button", { type: "button", class: "secondary small", "data-action": action, "data-feed": feed.id,
      "data-focus-key": `${action}-${feed.id}`, "aria-label": label }, text);
  }

  function row(feed: FeedJson): HTMLElement {
    const run = feed.last_run;
    const options = Object.entries(feed.options).filter(([, on]) => on).map(([name]) => name).join(", ");
    const filters = describeFilters(feed.filters);
    const next = feed.next_run_at ? time(feed.next_run_at) : feed.paused ? "Paused" : "On request only";
    return h("tr", { "data-feed-id": feed.id, "data-paused": String(feed.paused) },
      cell("Feed",
        h("strong", {}, `#${feed.id} ${feed.kind}`),
        h("span", { class: "options" }, [feed.format, options, feed.is_global && "everyone's rows"].filter(Boolean).join(", ")),
        filters && h("span", { class: "options filters" }, filters)),
      cell("Schedule", feed.every ? SCHEDULES[feed.every] ?? feed.every : "On request only",
        feed.paused && h("span", { class: "status paused" }, "paused")),
      cell("Last run", run && h("span", { class: "last-run" }, `#${run.number} `, statusText(run)),
        run?.rows != null && h("span", { class: "options" }, h("data", { value: run.rows }, formatCount(run.rows)), " rows"),
        run && time(run.finished_at ?? run.requested_at),
        run?.error && h("span", { class: "error" }, run.error)),
      cell("Next run", next),
      cell("Actions", h("div", { class: "row-actions" },
        actionButton(feed, "run", "Run now", `Run now: feed #${feed.id}`),
        feed.paused ? actionButton(feed, "resume", "Resume", `Resume feed #${feed.id}`) : actionButton(feed, "pause", "Pause", `Pause feed #${feed.id}`),
        actionButton(feed, "runs", "Runs", `Runs of feed #${feed.id}`),
        actionButton(feed, "delete", "Delete", `Delete feed #${feed.id}`))));
  }

  const polling = poller(refresh);

  async function refresh(): Promise<void> {
    // Only the newest read may render: an older answer, or one from before a sign-out, is dropped.
    const read = ++latestRead;
    try {
      const { feeds } = await getJson<{ feeds: FeedJson[] }>("/api/feeds");
      if (read !== latestRead || !polling.visible) return;
      const focused = document.activeElement?.getAttribute("data-focus-key");
      rowsBody.replaceChildren(...feeds.map(row));
      empty.hidden = feeds.length > 0;
      if (focused) rowsBody.querySelector<HTMLElement>(`[data-focus-key="${focused}"]`)?.focus();
      const shown = runs.shownFeed;
      if (shown !== undefined && !feeds.some((feed) => feed.id === shown)) runs.clear();
      const runsActive = shown !== undefined && feeds.some((feed) => feed.id === shown) ? await runs.show(shown) : false;
      if (runsActive || feeds.some((feed) => runIsActive(feed.last_run))) polling.soon();
    } catch (failure) {
      if (failure instanceof SessionEnded || read !== latestRead) return;
      say(error, explain("Could not read your feeds", failure));
      polling.soon();
    }
  }

  async function act(action: string, feedId: number): Promise<void> {
    switch (action) {
      case "run":
        await postJson(`/api/feeds/${feedId}/runs`, {});
        say(announcement, `Feed #${feedId}: a run is queued.`);
        await runs.show(feedId);
        break;
      case "pause":
      case "resume":
        await postJson(`/api/feeds/${feedId}/${action}`, {});
        say(announcement, `Feed #${feedId} ${action === "pause" ? "paused" : "resumed"}.`);
        break;
      case "runs":
        await runs.show(feedId);
        runs.focus();
        return;
      case "delete":
        if (!window.confirm(`Delete feed #${feedId}? Files already written stay in storage.`)) return;
        await deleteResource(`/api/feeds/${feedId}`);
        say(announcement, `Feed #${feedId} deleted.`);
        break;
    }
    await refresh();
  }

  rowsBody.addEventListener("click", async (event) => {
    const button = (event.target as Element).closest<HTMLButtonElement>("button[data-action]");
    if (!button) return;
    const feedId = Number(button.dataset.feed);
    say(error, undefined);
    await whileBusy(button, () => act(button.dataset.action!, feedId),
      (failure) => say(error, explain(`Could not ${button.textContent?.toLowerCase()} feed #${feedId}`, failure)));
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say(formError, undefined);
    await whileBusy(form.querySelector("button")!, async () => {
      const { feed } = await postJson<{ feed: FeedJson }>("/api/feeds", feedFromForm());
      say(announcement, `Feed #${feed.id} (${feed.kind}, ${feed.format}) created.`);
      await refresh();
    }, (failure) => say(formError, explain("Could not create the feed", failure)));
  });

  return {
    show: polling.show,
    hide: polling.hide,
    clear() {
      latestRead += 1;
      runs.clear();
      rowsBody.replaceChildren();
      empty.hidden = true;
      form.reset();
      for (const element of [formError, error, announcement]) say(element, undefined);
    },
  };
}
