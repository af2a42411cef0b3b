// The export page: a button per kind, and the history of the caller's exports,
// polled every second while any of them is queued or running.
import { ApiError, download, getJson, graphql, postJson, SessionEnded, whileBusy } from "./api.ts";
import { byId, cell, h, say } from "./dom.ts";
import { formatBytes, formatCount, formatDuration, formatTime } from "./format.ts";
import type { Page } from "./page.ts";
import { poller } from "./poller.ts";

type Kind = "multi_agent_log" | "prompt_versions" | "judge_scores" | "agent_effectiveness" | "all";

interface ExportJson {
  id: number;
  kind: Kind;
  options: { gzip?: boolean; excel?: boolean };
  status: "queued" | "running" | "succeeded" | "failed";
  requested_at: string;
  started_at: string | null;
  finished_at: string | null;
  rows: number | null;
  bytes: number | null;
  file_name: string | null;
  error: string | null;
  progress_rows: number;
  stale: boolean | null;
  download_url: string | null;
  requested_by: string | null;
}

const KIND_NAMES: Record<Kind, string> = {
  multi_agent_log: "Multi-agent log",
  prompt_versions: "Prompt versions",
  judge_scores: "Judge scores",
  agent_effectiveness: "Agent effectiveness",
  all: "All (zip)",
};

/** Kinds with a REST endpoint of their own; the others are requested through GraphQL. */
const REST_ENDPOINTS: Partial<Record<Kind, string>> = {
  multi_agent_log: "/api/storage/export-multi-agent",
  all: "/api/storage/export-all",
};

const REQUEST_EXPORT = `mutation RequestExport($kind: String!, $options: JSON!) {
  requestExport(input: { kind: $kind, options: $options }) { clientMutationId }
}`;

/**
 * What each kind writes a row for, counted as the caller (RLS applies as it
 * does to the export). agent_effectiveness has a row per agent, so agents are
 * counted rather than the view, which would compute every agent's figures.
 */
const ROW_COUNTS = `query ExportRowCounts {
  allPrompts { totalCount }
  allPromptVersions { totalCount }
  allJudgeScores { totalCount }
  allAgents { totalCount }
}`;

interface RowCounts {
  allPrompts: { totalCount: number };
  allPromptVersions: { totalCount: number };
  allJudgeScores: { totalCount: number };
  allAgents: { totalCount: number };
}

function expectedRows(kind: Kind, counts: RowCounts): number {
  const byKind: Record<Exclude<Kind, "all">, number> = {
    multi_agent_log: counts.allPrompts.totalCount,
    prompt_versions: counts.allPromptVersions.totalCount,
    judge_scores: counts.allJudgeScores.totalCount,
    agent_effectiveness: counts.allAgents.totalCount,
  };
  return kind === "all" ? Object.values(byKind).reduce((sum, rows) => sum + rows, 0) : byKind[kind];
}

const isActive = (item: ExportJson) => item.status === "queued" || item.status === "running";

function timeTaken(item: ExportJson): string | undefined {
  if (!item.finished_at) return undefined;
  const start = Date.parse(item.started_at ?? item.requested_at);
  return formatDuration(Math.max(Date.parse(item.finished_at) - start, 0));
}

export function exportsPage(): Page {
  const form = byId<HTMLFormElement>("export-form");
  const gzip = byId<HTMLInputElement>("option-gzip");
  const excel = byId<HTMLInputElement>("option-excel");
  const error = byId("export-error");
  const announcement = byId("export-status");
  const historyError = byId("history-error");
  const rowsBody = byId("history-rows");
  const empty = byId("history-empty");
  /** The status each export had when last shown, to announce the ones that finish. */
  const shownStatus = new Map<number, ExportJson["status"]>();
  /** Rows each running export is expected to write, read once per export for its progress bar. */
  const expected = new Map<number, number>();
  let latestRead = 0;

  function statusCell(item: ExportJson): HTMLElement {
    const status = h("span", { class: `status ${item.status}` }, item.status);
    if (item.status === "running") {
      const max = Math.max(expected.get(item.id) ?? 0, item.progress_rows, 1);
      return cell("Status", status,
        h("progress", { max, value: item.progress_rows, "aria-label": `Export ${item.id}: rows written` }),
        h("span", { class: "progress-text" }, `${formatCount(item.progress_rows)} of about ${formatCount(max)} rows`));
    }
    // A queued export with an error failed an attempt and waits for its retry.
    const failure = item.status === "failed" ? item.error ?? "The export failed." : item.error;
    return cell("Status", status, failure && h("span", { class: "error" }, failure));
  }

  function fileCell(item: ExportJson): HTMLElement {
    if (!item.download_url) return cell("File");
    const name = item.file_name ?? `export-${item.id}`;
    const button = h("button", { type: "button", class: "link", "data-focus-key": `download-${item.id}`, "aria-label": `Download ${name}` }, "Download");
    button.addEventListener("click", () => {
      say(error, undefined);
      void whileBusy(button, () => download(`/api/exports/${item.id}/download-link`),
        (failure) => say(error, `Could not download ${name}: ${failure.message}`));
    });
    return cell("File", button, h("span", { class: "file-name" }, name));
  }

  function row(item: ExportJson): HTMLElement {
    const options = [item.options.gzip && "gzip", item.options.excel && "excel"].filter(Boolean).join(", ");
    const requested = new Date(item.requested_at);
    const done = item.status === "succeeded";
    return h("tr", { "data-export-id": item.id, "data-status": item.status },
      cell("Export",
        h("strong", {}, `#${item.id} ${KIND_NAMES[item.kind] ?? item.kind}`),
        options && h("span", { class: "options" }, options),
        item.requested_by && h("span", { class: "requested-by" }, `by ${item.requested_by}`),
        h("time", { datetime: item.requested_at }, formatTime(requested))),
      statusCell(item),
      cell("Records", done && item.rows !== null && h("data", { value: item.rows }, formatCount(item.rows))),
      cell("Size", done && item.bytes !== null && h("data", { value: item.bytes }, formatBytes(item.bytes))),
      cell("Time taken", timeTaken(item)),
      cell("Stale", item.stale === null ? "" : item.stale ? "yes" : "no"),
      fileCell(item));
  }

  function render(items: ExportJson[]): void {
    // Re-rendering replaces the buttons; keep keyboard focus where it was.
    const focused = document.activeElement?.getAttribute("data-focus-key");
    rowsBody.replaceChildren(...items.map(row));
    empty.hidden = items.length > 0;
    const finished = items.filter((item) => !isActive(item) && shownStatus.has(item.id) && shownStatus.get(item.id) !== item.status);
    if (finished.length) say(announcement, finished.map((item) => `Export #${item.id} ${KIND_NAMES[item.kind]}: ${item.status}.`).join(" "));
    for (const item of items) shownStatus.set(item.id, item.status);
    if (focused) rowsBody.querySelector<HTMLElement>(`[data-focus-key="${focused}"]`)?.focus();
  }

  async function readExpected(items: ExportJson[]): Promise<void> {
    const unknown = items.filter((item) => isActive(item) && !expected.has(item.id));
    if (!unknown.length) return;
    const counts = await graphql<RowCounts>(ROW_COUNTS, {});
    for (const item of unknown) expected.set(item.id, expectedRows(item.kind, counts));
  }

  const polling = poller(refresh);

  async function refresh(): Promise<void> {
    // Only the newest read may render: an older answer, or one from before a sign-out, is dropped.
    const read = ++latestRead;
    try {
      const { exports } = await getJson<{ exports: ExportJson[] }>("/api/exports");
      await readExpected(exports);
      if (read !== latestRead || !polling.visible) return;
      say(historyError, undefined);
      render(exports);
      if (exports.some(isActive)) polling.soon();
    } catch (failure) {
      if (failure instanceof SessionEnded || read !== latestRead) return;
      say(historyError, `Could not read the export history: ${(failure as Error).message}`);
      polling.soon();
    }
  }

  async function requestExport(kind: Kind): Promise<void> {
    // "all" is a zip, compressed already: the gzip option applies to single CSV files only.
    const options = { gzip: kind !== "all" && gzip.checked, excel: excel.checked };
    const endpoint = REST_ENDPOINTS[kind];
    if (endpoint) await postJson(endpoint, options);
    else await graphql(REQUEST_EXPORT, { kind, options });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = event.submitter;
    const kind = button?.dataset.kind as Kind | undefined;
    if (!(button instanceof HTMLButtonElement) || !kind) return;
    say(error, undefined);
    await whileBusy(button, async () => {
      await requestExport(kind);
      say(announcement, `Export ${KIND_NAMES[kind]}: queued.`);
      await refresh();
    }, (failure) => say(error, failure instanceof ApiError && failure.code === "PRRTL"
      ? `Rate limit reached: ${failure.message}`
      : `Could not start the ${KIND_NAMES[kind]} export: ${failure.message}`));
  });

  return {
    show: polling.show,
    hide: polling.hide,
    clear() {
      latestRead += 1;
      expected.clear();
      shownStatus.clear();
      say(announcement, undefined);
      rowsBody.replaceChildren();
      empty.hidden = true;
      say(error, undefined);
      say(historyError, undefined);
    },
  };
}
