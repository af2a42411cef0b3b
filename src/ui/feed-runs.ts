// A feed's runs, below the list of feeds: each run's status, rows, finish time
// and its files and manifest, each downloaded through a signed link as exports are.
import { download, getJson, SessionEnded, whileBusy } from "./api.ts";
import { byId, cell, h } from "./dom.ts";
import { formatBytes, formatCount, formatTime } from "./format.ts";

export interface RunJson {
  feed_id: number;
  number: number;
  status: "queued" | "running" | "succeeded" | "failed";
  requested_at: string;
  finished_at: string | null;
  rows: number | null;
  files: { name: string; rows: number; bytes: number; sha256: string; download_url: string }[];
  manifest_url: string | null;
  error: string | null;
}

export const runIsActive = (run: RunJson | null) => run?.status === "queued" || run?.status === "running";

export function statusText(run: RunJson): HTMLElement {
  return h("span", { class: `status ${run.status}` }, run.status);
}

/** The runs panel of one feed at a time; `onError` shows what went wrong beside the feeds. */
export function feedRuns(onError: (message: string | undefined) => void) {
  const panel = byId("feed-runs");
  const title = byId("feed-runs-title");
  const rowsBody = byId("feed-run-rows");
  const empty = byId("feed-runs-empty");
  let shownFeed: number | undefined;
  let latestRead = 0;

  function fileButton(run: RunJson, name: string, url: string, detail?: string): HTMLElement {
    const button = h("button", { type: "button", class: "link", "data-focus-key": `file-${run.feed_id}-${run.number}-${name}`,
      "aria-label": `Download ${name} of run ${run.number}` }, name);
    button.addEventListener("click", () => {
      onError(undefined);
      void whileBusy(button, () => download(`${url}/download-link`), (failure) => onError(`Could not download ${name}: ${failure.message}`));
    });
    return h("li", {}, button, detail && h("span", { class: "file-name" }, detail));
  }

  function row(run: RunJson): HTMLElement {
    const files = run.files.map((file) => fileButton(run, file.name, file.download_url, `${formatCount(file.rows)} rows, ${formatBytes(file.bytes)}`));
    if (run.manifest_url) files.push(fileButton(run, "manifest.json", run.manifest_url));
    return h("tr", { "data-run": run.number, "data-status": run.status },
      cell("Run", h("strong", {}, `#${run.number}`)),
      cell("Status", statusText(run), run.error && h("span", { class: "error" }, run.error)),
      cell("Rows", run.rows !== null && h("data", { value: run.rows }, formatCount(run.rows))),
      cell("Finished", run.finished_at && h("time", { datetime: run.finished_at }, formatTime(new Date(run.finished_at)))),
      cell("Files", files.length > 0 && h("ul", { class: "files" }, ...files)));
  }

  /** Reads and shows the runs of `feedId`; true while one of them is queued or running. */
  async function show(feedId: number): Promise<boolean> {
    const read = ++latestRead;
    if (shownFeed !== feedId) {
      shownFeed = feedId;
      title.textContent = `Runs of feed #${feedId}`;
      rowsBody.replaceChildren();
    }
    panel.hidden = false;
    try {
      const { runs } = await getJson<{ runs: RunJson[] }>(`/api/feeds/${feedId}/runs`);
      if (read !== latestRead || shownFeed !== feedId) return false;
      // Re-rendering replaces the buttons; keep keyboard focus where it was.
      const focused = document.activeElement?.getAttribute("data-focus-key");
      rowsBody.replaceChildren(...[...runs].reverse().map(row));
      empty.hidden = runs.length > 0;
      if (focused) rowsBody.querySelector<HTMLElement>(`[data-focus-key="${focused}"]`)?.focus();
      return runs.some(runIsActive);
    } catch (failure) {
      if (!(failure instanceof SessionEnded) && read === latestRead) onError(`Could not read the runs of feed #${feedId}: ${(failure as Error).message}`);
      return false;
    }
  }

  return {
    show,
    get shownFeed() { return shownFeed; },
    focus: () => title.focus(),
    clear() {
      latestRead += 1;
      shownFeed = undefined;
      panel.hidden = true;
      title.textContent = "";
      rowsBody.replaceChildren();
      empty.hidden = true;
    },
  };
}
