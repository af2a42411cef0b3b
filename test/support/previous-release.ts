// A database as the previous release left it, to test that `prompter migrate`
// upgrades it: that release's committed migrations, graphile-worker's schema
// and its sql/ files, taken from git and applied as that release did (as the
// superuser, which it ran as).
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { migrate } from "graphile-migrate";
import { clearAllPools } from "graphile-migrate/dist/pgReal.js";
import { Logger } from "@graphile/logger";
import { runMigrations as installWorkerSchema } from "graphile-worker";
import pg from "pg";

/** The last commit of the previous release (stop 9). */
export const PREVIOUS_RELEASE = "1b82daa";

const projectRoot = fileURLToPath(new URL("../..", import.meta.url));
const silent = new Logger(() => () => {});

export async function buildPreviousRelease(superuserDatabaseUrl: string): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), "prompter-previous-release-"));
  try {
    const archive = execFileSync("git", ["archive", PREVIOUS_RELEASE, "migrations", "sql"], { cwd: projectRoot });
    execFileSync("tar", ["-x", "-C", dir], { input: archive });
    try {
      await migrate({
        connectionString: superuserDatabaseUrl,
        migrationsFolder: path.join(dir, "migrations"),
        pgSettings: { search_path: "pg_catalog" },
        placeholders: {},
        afterReset: [],
        afterAllMigrations: [],
        afterCurrent: [],
        logger: silent,
      } as Parameters<typeof migrate>[0]);
    } finally {
      clearAllPools();
    }
    await installWorkerSchema({ connectionString: superuserDatabaseUrl });
    const client = new pg.Client({ connectionString: superuserDatabaseUrl });
    await client.connect();
    try {
      for (const folder of ["sql/functions", "sql/rules"]) {
        for (const name of (await readdir(path.join(dir, folder))).filter((f) => f.endsWith(".sql")).sort()) {
          await client.query(await readFile(path.join(dir, folder, name), "utf8"));
        }
      }
    } finally {
      await client.end();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
