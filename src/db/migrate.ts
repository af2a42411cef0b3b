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
    // One transaction, under the migration lock that migrateDatabase holds.
    await client.query("begin");
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
  // exclusive lock"). The lock lasts as long as this session's transaction.
  const lock = new pg.Client({ connectionString });
  await lock.connect();
  let lockedOut = false;
  try {
    lockedOut = await takeMigrationLock(lock, connectionString);
    try {
      await runCommittedMigrations(settings);
    } finally {
      clearAllPools();
    }
    await installWorkerSchema({ connectionString, logger: undefined });
    await applyRepeatableSql(connectionString, root);
    if (options.authenticatorUrl) await ensureAuthenticator(connectionString, options.authenticatorUrl);
  } finally {
    // SQL logins come back in once all is done, or has failed; should this not
    // happen (the process dies first), the worker's limits task lets them in.
    if (lockedOut) {
      await lock.query("select app_private.restore_sql_login_access()")
        .then(() => lock.query("commit"))
        .catch((error) => process.stderr.write(`prompter migrate: could not let SQL logins back in (the worker will): ${error.message}\n`));
    }
    await lock.end();
  }
}

/** Creates or checks the gateway's login (app_private.ensure_authenticator), with the URL's password. */
async function ensureAuthenticator(connectionString: string, authenticatorUrl: string): Promise<void> {
  const authenticator = new URL(authenticatorUrl);
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query("select app_private.ensure_authenticator($1, $2)", [
      decodeURIComponent(authenticator.username),
      decodeURIComponent(authenticator.password),
    ]);
  } finally {
    await client.end();
  }
}

/**
 * A row lock on app_private.process_locks, which only the owner may write, so
 * no API caller or SQL login can hold migrations up (as anyone can hold an
 * advisory key). The table comes with the migrations: a database that has not
 * got it yet has no SQL logins either, and is locked with an advisory key.
 * graphile-migrate then takes its own advisory key, which a SQL login could
 * take, and the migration needs tables a login's transaction could hold
 * locks on: SQL logins are kept out of the database until the migration is
 * done (app_private.lock_out_sql_logins). Returns whether they were.
 * A database migrated by a release before that has only its sessions holding
 * advisory locks ended. (No migration may alter app_private.process_locks: it
 * would wait for this lock.)
 */
async function takeMigrationLock(lock: pg.Client, connectionString: string): Promise<boolean> {
  const { rows: [{ ready, lockout }] } = await lock.query<{ ready: boolean; lockout: boolean }>(
    `select to_regclass('app_private.process_locks') is not null
        and to_regprocedure('app_private.enforce_sql_login_limits(boolean)') is not null as ready,
            to_regprocedure('app_private.lock_out_sql_logins(int, int)') is not null as lockout`);
  if (!ready) {
    await lock.query("select pg_advisory_lock(hashtextextended('prompter.migrate', 0))");
    return false;
  }
  await lock.query("begin");
  await lock.query("select from app_private.process_locks where name = 'migrate' for update");
  if (!lockout) {
    await lock.query("select * from app_private.enforce_sql_login_limits(advisory_lock_holders => true)");
    return false;
  }
  // Its own session: what it revokes must be committed before it ends the logins' sessions.
  const lockingOut = new pg.Client({ connectionString });
  try {
    await lockingOut.connect();
    const { rows: [{ unended_sessions: unended }] } = await lockingOut.query<{ unended_sessions: number }>(
      "call app_private.lock_out_sql_logins(null, null)");
    if (unended > 0) {
      process.stderr.write(`prompter migrate: ${unended} session(s) of SQL logins the owner is not a member of could not be ended; the migration may wait for them.\n`);
    }
  } catch (error) {
    // Some logins may be out already: let them back in before failing.
    await lock.query("select app_private.restore_sql_login_access()").then(() => lock.query("commit")).catch(() => {});
    throw error;
  } finally {
    await lockingOut.end().catch(() => {});
  }
  return true;
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
