// Brings a database to the current schema: graphile-migrate's committed
// migrations (tables, data), graphile-worker's schema (the job queue), then every
// file of sql/functions and sql/rules (functions, triggers, policies, views),
// which are idempotent and re-applied each time so each has one home.
import { migrate as runCommittedMigrations } from "graphile-migrate";
// graphile-migrate keeps its pool for a moment after use and exits the process
// if a pooled connection errors (say the database is dropped or restarted).
import { clearAllPools } from "graphile-migrate/dist/pgReal.js";
import { runMigrations as installWorkerSchema } from "graphile-worker";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import JSON5 from "json5";
import { Logger } from "@graphile/logger";

const projectRoot = fileURLToPath(new URL("../..", import.meta.url));
const REPEATABLE_FOLDERS = ["sql/functions", "sql/rules"];

async function gmrc(root: string) {
  return JSON5.parse(await readFile(path.join(root, ".gmrc"), "utf8"));
}

async function repeatableSql(root: string): Promise<{ file: string; sql: string }[]> {
  const files: { file: string; sql: string }[] = [];
  for (const folder of REPEATABLE_FOLDERS) {
    const names = (await readdir(path.join(root, folder))).filter((f) => f.endsWith(".sql")).sort();
    for (const name of names) {
      const file = path.join(folder, name);
      files.push({ file, sql: await readFile(path.join(root, file), "utf8") });
    }
  }
  return files;
}

/** `root` is a checkout of prompter (another release's, in the upgrade test). */
export async function applyRepeatableSql(connectionString: string, root = projectRoot): Promise<void> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query("begin");
    // Several processes may start at once; one applies, the others wait.
    await client.query("select pg_advisory_xact_lock(hashtextextended('prompter.apply_sql', 0))");
    for (const { file, sql } of await repeatableSql(root)) {
      try {
        await client.query(sql);
      } catch (error) {
        throw new Error(`${file}: ${(error as Error).message}`, { cause: error });
      }
    }
    await client.query("commit");
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    await client.end();
  }
}

// Migrations report only what needs attention; "Already up to date" on every start is noise.
const quietLogger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") process.stderr.write(`graphile-migrate: ${message}\n`);
});

/**
 * Migrates as the owner (`connectionString`); with `authenticatorUrl`, also
 * creates or checks that login (app_private.ensure_authenticator), with its
 * password. `root` is where .gmrc, migrations/ and sql/ are read from (another
 * release's, in the upgrade tests).
 */
export async function migrateDatabase(
  connectionString: string,
  options: { authenticatorUrl?: string; root?: string } = {},
): Promise<void> {
  const root = options.root ?? projectRoot;
  const settings = {
    ...(await gmrc(root)),
    connectionString,
    migrationsFolder: path.join(root, "migrations"),
    logger: quietLogger,
  };
  // Several processes may start at once (workers scaled out): one migrates and
  // the others wait, where graphile-migrate would fail them ("Failed to get
  // exclusive lock"). The lock lasts as long as this session.
  const lock = new pg.Client({ connectionString });
  await lock.connect();
  try {
    await lock.query("select pg_advisory_lock(hashtextextended('prompter.migrate', 0))");
    try {
      await runCommittedMigrations(settings);
    } finally {
      clearAllPools();
    }
    await installWorkerSchema({ connectionString, logger: undefined });
    await applyRepeatableSql(connectionString, root);
    if (options.authenticatorUrl) {
      const authenticator = new URL(options.authenticatorUrl);
      await lock.query("select app_private.ensure_authenticator($1, $2)", [
        decodeURIComponent(authenticator.username),
        decodeURIComponent(authenticator.password),
      ]);
    }
  } finally {
    await lock.end();
  }
}

// The committed migrations a running process knows of do not change, so
// /readyz reads the folder once rather than on every probe.
let committedCount: Promise<number> | undefined;

/** True when every committed migration has been applied (for /readyz). */
export async function migrationsAreCurrent(client: pg.ClientBase): Promise<boolean> {
  committedCount ??= readdir(path.join(projectRoot, "migrations/committed"))
    .then((files) => files.filter((f) => f.endsWith(".sql")).length);
  const { rows } = await client.query<{ count: number }>("select app_hidden.gateway_applied_migrations() as count");
  return rows[0].count >= (await committedCount);
}
