// "all" writes every kind from one snapshot. These tests pause an export at a
// chosen point by holding a lock it needs: on app_public.agents, which only the
// query-building step reads, it pauses after its snapshot is taken and before
// any file is written; on agent_stats, which only the zip's last file reads,
// after three files are written. While it waits they write to the database, or
// look at the progress it reports and the temporary file it writes.
import { readdir } from "node:fs/promises";
import type pg from "pg";
import { beforeAll, expect, it } from "vitest";
import { createUser, useTestDatabase } from "../support/db.ts";
import {
  exportFile,
  parseCsv,
  readExport,
  requestExport,
  type SignedIn,
  unzip,
  useExportWorker,
  waitForExport,
  waitUntil,
} from "./support.ts";
import { expectedExport } from "./oracle.ts";

const db = useTestDatabase();
const exportWorker = useExportWorker(db);
let user: SignedIn;
const FILES = ["multi_agent_log.csv", "prompt_versions.csv", "judge_scores.csv", "agent_effectiveness.csv"];

beforeAll(async () => {
  user = { role: "app_user", userId: await createUser(db.pool) };
  await db.pool.query("select app_private.generate_demo($1, 300)", [user.userId]);
  // Someone else's data, which must stay out of the user's files.
  await db.pool.query("select app_private.generate_demo($1, 20)", [await createUser(db.pool)]);
});

async function exportedFiles(id: string) {
  const row = await waitForExport(db.pool, id);
  const entries = unzip(await exportFile(exportWorker.dir, row));
  expect([...entries.keys()]).toEqual(FILES);
  const csv = Object.fromEntries([...entries].map(([name, data]) => [name.replace(".csv", ""), parseCsv(data)]));
  return { row, csv };
}

/** Records of a parsed CSV as objects keyed by its header. */
function records(csv: string[][]): Record<string, string>[] {
  const [header, ...rows] = csv;
  return rows.map((row) => Object.fromEntries(header.map((name, i) => [name, row[i]])));
}

/** The files describe the same data: the statistics and the log agree with the versions and scores. */
function expectConsistent(csv: Record<string, string[][]>) {
  const versions = records(csv.prompt_versions);
  const scores = records(csv.judge_scores);
  const log = records(csv.multi_agent_log);
  const versionsById = new Map(versions.map((v) => [v.id, v]));
  for (const stats of records(csv.agent_effectiveness)) {
    const totals = scores.filter((s) => s.source === stats.agent).map((s) => Number(s.total));
    expect(Number(stats.total)).toBe(versions.filter((v) => v.source === stats.agent).length);
    expect(Number(stats.scored)).toBe(totals.length);
    expect(Number(stats.wins)).toBe(log.filter((entry) => entry.selected_agent === stats.agent).length);
    expect(Number(stats.avg_score)).toBeCloseTo(totals.length ? totals.reduce((a, b) => a + b, 0) / totals.length : 0, 9);
  }
  expect(new Set(log.map((entry) => entry.request_id))).toEqual(new Set(versions.map((v) => v.prompt_id)));
  // Each prompt here has one version per agent, so its score is that version's.
  for (const score of scores) {
    const version = versionsById.get(score.prompt_version_id)!;
    const entry = log.find((e) => e.request_id === version.prompt_id)!;
    expect(entry[`${version.source}_score`]).toBe(score.total);
  }
}

/** Runs `during` while an export of everything waits for `table`, which `waitingQuery` reads. */
async function pausedExport(
  table: string,
  waitingQuery: string,
  during: (blocker: pg.PoolClient, id: string) => Promise<void>,
): Promise<string> {
  const blocker = await db.pool.connect();
  try {
    await blocker.query("begin");
    await blocker.query(`lock table ${table} in access exclusive mode`);
    const id = await requestExport(db.pool, user, "all");
    await waitUntil(
      () =>
        db.pool.query(
          "select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like $1",
          [waitingQuery],
        ),
      (result) => result.rowCount === 1,
      `the export waits for ${table}`,
    );
    await during(blocker, id);
    await blocker.query("commit");
    return id;
  } finally {
    await blocker.query("rollback").catch(() => {});
    blocker.release();
  }
}

it("reports progress while it runs and keeps its partial output under a temporary name", async () => {
  const files = [...(await expectedExport(db.pool, user, "all")).values()];
  const firstThree = String(files.slice(0, 3).reduce((sum, rows) => sum + rows.length - 1, 0));
  const id = await pausedExport("app_hidden.agent_stats", "COPY (%agent_effectiveness%", async (_blocker, id) => {
    const paused = await waitUntil(
      () => readExport(db.pool, id),
      (row) => row.progress_rows === firstThree,
      "progress counts the rows of the first three files",
    );
    expect(paused).toMatchObject({ status: "running", file_name: null, attempts: 1 });
    expect(await readdir(exportWorker.dir)).toEqual([expect.stringMatching(new RegExp(`^all-${id}-1-[0-9a-f]{8}\\.zip\\.partial$`))]);
  });
  const { row } = await exportedFiles(id);
  expect(await readdir(exportWorker.dir)).toContain(row.file_name);
  expect((await readdir(exportWorker.dir)).filter((name) => name.endsWith(".partial"))).toEqual([]);
});

it("takes every file from one snapshot: a write committed during the export is in none of them, and in the next", async () => {
  let added = { prompt: "", version: "" };
  const id = await pausedExport("app_public.agents", "%export_parts%", async (blocker) => {
    // Written by the transaction holding the lock, since the foreign keys to agents need it too.
    const prompt = await blocker.query<{ id: string }>(
      "insert into app_public.prompts (user_id, text) values ($1, 'written during the export') returning id",
      [user.userId],
    );
    const version = await blocker.query<{ id: string }>(
      "insert into app_public.prompt_versions (prompt_id, user_id, source, text) values ($1, $2, 'domain', 'its version') returning id",
      [prompt.rows[0].id, user.userId],
    );
    await blocker.query(
      "insert into app_public.judge_scores (prompt_version_id, user_id, clarity, specificity, actionability, structure, context_use) values ($1, $2, 9, 9, 9, 9, 9)",
      [version.rows[0].id, user.userId],
    );
    await blocker.query("insert into app_public.best_heads (prompt_id, prompt_version_id, user_id) values ($1, $2, $3)", [
      prompt.rows[0].id,
      version.rows[0].id,
      user.userId,
    ]);
    added = { prompt: prompt.rows[0].id, version: version.rows[0].id };
  });

  const during = await exportedFiles(id);
  expect(during.csv.multi_agent_log.map((row) => row[0])).not.toContain(added.prompt);
  expect(during.csv.prompt_versions.map((row) => row[0])).not.toContain(added.version);
  expectConsistent(during.csv);
  expect(during.row.rows).toBe(String(Object.values(during.csv).reduce((sum, rows) => sum + rows.length - 1, 0)));
  expect(during.row.stale).toBe(true);

  const next = await exportedFiles(await requestExport(db.pool, user, "all"));
  expect(next.csv.multi_agent_log.map((row) => row[0])).toContain(added.prompt);
  expect(next.csv.prompt_versions.map((row) => row[0])).toContain(added.version);
  expectConsistent(next.csv);
  expect(next.row.stale).toBe(false);
  const expected = await expectedExport(db.pool, user, "all");
  for (const name of FILES) expect(next.csv[name.replace(".csv", "")]).toEqual(expected.get(name));
});
