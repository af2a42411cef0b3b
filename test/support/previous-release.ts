// A database as the previous release left it, to test that `prompter migrate`
// upgrades it: that release's .gmrc, committed migrations and sql/, taken from
// git and applied with its own migrate steps.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { migrateDatabase } from "../../src/db/migrate.ts";

/** The last commit of the previous release (stop 9): migrations 000001-000002 and their sql/. */
export const PREVIOUS_RELEASE = "1b82daa";

const projectRoot = fileURLToPath(new URL("../..", import.meta.url));

/** The last release before multi_agent_log's rows were stamped for feeds (migration 000014). */
export const BEFORE_LOG_STAMPS = "b42dec9";

export async function buildPreviousRelease(databaseUrl: string, release = PREVIOUS_RELEASE): Promise<void> {
  const root = await mkdtemp(path.join(tmpdir(), "prompter-previous-release-"));
  try {
    const archive = execFileSync("git", ["archive", release, ".gmrc", "migrations", "sql"], { cwd: projectRoot });
    execFileSync("tar", ["-x", "-C", root], { input: archive });
    await migrateDatabase(databaseUrl, { root });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
