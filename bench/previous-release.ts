import { spawn } from "node:child_process";
import { mkdtemp, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { withDatabaseName } from "../src/db/embedded.ts";
import { PREVIOUS_RELEASE } from "../test/support/previous-release.ts";
import { DATABASE, node, PORT, root, run, SECRET, stopProcess, waitFor } from "./harness.ts";

/**
 * The previous release (git PREVIOUS_RELEASE, before sessions were checked in
 * SQL), deployed as it was then: its own checkout (sharing our node_modules: its
 * dependencies are a subset), its own migrate command and a database of its own
 * with the same demo data, and its gateway on the next port. The baseline for
 * the session check's cost on agent_effectiveness.
 */
export async function startPreviousRelease(superuserUrl: string, exportDir: string) {
  const checkout = await mkdtemp(path.join(os.tmpdir(), "prompter-bench-previous-"));
  await run("git", ["archive", "--format=tar", "-o", path.join(checkout, "release.tar"), PREVIOUS_RELEASE], { cwd: root });
  await run("tar", ["-xf", "release.tar"], { cwd: checkout });
  await symlink(path.join(root, "node_modules"), path.join(checkout, "node_modules"));
  const database = `${DATABASE}_previous`;
  const admin = new pg.Client({ connectionString: superuserUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${admin.escapeIdentifier(database)} with (force)`);
  await admin.query(`create database ${admin.escapeIdentifier(database)}`);
  await admin.end();
  const url = withDatabaseName(superuserUrl, database);
  const env = { ...process.env, DATABASE_URL: url, PORT: String(PORT + 1), JWT_SECRET: SECRET, EXPORT_DIR: exportDir, LOG_LEVEL: "warn", NODE_ENV: "production" };
  await run(node, ["src/cli.ts", "migrate"], { cwd: checkout, env });
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const [adminId, dataUser] = (await pool.query<{ id: string }>(
    "insert into app_public.users (username, is_admin) select 'bench_' || i, i = 0 from generate_series(0, 1) i returning id")).rows.map((r) => r.id);
  const server = spawn(node, ["src/cli.ts", "server"], { cwd: checkout, env, stdio: ["ignore", "ignore", "inherit"] });
  const previousBase = `http://127.0.0.1:${PORT + 1}`;
  await waitFor(async () => (await fetch(`${previousBase}/healthz`)).ok, "the previous release's gateway");
  let generated = 0;
  return {
    base: previousBase, adminId, dataUser, pid: server.pid!,
    /** `count` users of its own for the write paths. */
    async writers(count: number): Promise<string[]> {
      return (await pool.query<{ id: string }>(
        "insert into app_public.users (username) select 'bench_writer_' || i from generate_series(1, $1) i returning id", [count])).rows.map((r) => r.id);
    },
    async generate(size: number) {
      await pool.query("select app_private.generate_demo($1, $2)", [dataUser, size - generated]);
      await pool.query("vacuum analyze");
      generated = size;
    },
    async stop() {
      await stopProcess(server);
      await pool.end();
      await rm(checkout, { recursive: true, force: true });
    },
  };
}

export type PreviousRelease = Awaited<ReturnType<typeof startPreviousRelease>>;
