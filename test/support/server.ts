// Real prompter processes against a test database: `prompter server` (by
// default) on a free port, ready once GET /healthz answers, or any command
// ready once its output says so; spawned with the project's Node 24, their
// JSON log lines collected. Also helpers to sign tokens and call GraphQL.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import jwt from "jsonwebtoken";
import { afterAll, afterEach, beforeEach } from "vitest";
import { authUrlFor } from "./db.ts";

const projectRoot = fileURLToPath(new URL("../..", import.meta.url));

/** The JWT_SECRET test servers run with, unless a test overrides it. */
// Random, so a production server (NODE_ENV=production) accepts it as strong enough.
export const TEST_JWT_SECRET = "lXrBB8HZ1vFDH0BIu3V-vIhKbVdCeeQnaPY7JakRoZilJC7PGF2to1NrwNZ2Q0rR";

/** A line of a process's JSON log. */
export type LogRecord = Record<string, unknown> & { level: string; msg: string };

export interface PrompterProcess {
  child: ChildProcess;
  /** EXPORT_DIR of the process. */
  exportDir: string;
  /** Everything the process has printed so far. */
  output(): { stdout: string; stderr: string };
  /** Its stdout, one JSON log line each (throws on a line that is not JSON); a line is complete at its newline. */
  logLines(): LogRecord[];
  /** Resolves with the exit code (null when a signal ended it). */
  exited: Promise<number | null>;
  /** SIGTERM, then waits for the process to exit (SIGKILL after 10 s); resolves with the exit code. */
  stop(): Promise<number | null>;
}

export interface RunningServer extends PrompterProcess {
  baseUrl: string;
}

/** The process's environment: the test's, the database and test settings, then `overrides` (undefined removes a variable). */
function environment(databaseUrl: string, exportDir: string, overrides: Record<string, string | undefined> = {}) {
  const env: Record<string, string> = {};
  const merged = {
    ...process.env,
    DATABASE_URL: databaseUrl,
    ...(databaseUrl ? { AUTH_DATABASE_URL: authUrlFor(databaseUrl) } : {}),
    PORT: "0",
    HOST: "127.0.0.1",
    JWT_SECRET: TEST_JWT_SECRET,
    EXPORT_DIR: exportDir,
    ...overrides,
  };
  for (const [name, value] of Object.entries(merged)) if (value !== undefined) env[name] = value;
  return env;
}

/**
 * Every process spawned here is SIGKILLed, even when its test fails before
 * stopping it (a worker left running would take the next test's jobs): one
 * spawned by a test after that test, one spawned by a beforeAll after the
 * file's tests, and any left when the test process exits. These hooks attach
 * to the root suite of each test file that imports this module.
 */
const spawned = new Map<ChildProcess, { spawnedByTest: boolean }>();
let inTest = false;

async function killRunning(which: (spawnedByTest: boolean) => boolean) {
  const killed = [...spawned]
    .filter(([child, { spawnedByTest }]) => which(spawnedByTest) && child.exitCode === null && child.signalCode === null)
    .map(([child]) => child);
  await Promise.all(
    killed.map((child) => {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGCONT"); // a stopped process (SIGSTOP) would not exit before it is continued
      child.kill("SIGKILL");
      return exited;
    }),
  );
}

beforeEach(() => {
  inTest = true;
});
afterEach(async () => {
  inTest = false;
  await killRunning((spawnedByTest) => spawnedByTest);
});
afterAll(() => killRunning(() => true));
process.once("exit", () => {
  for (const child of spawned.keys()) child.kill("SIGKILL");
});

/** Runs `npx prompter <args>`; resolves once `ready` holds of what it printed (which may be a promise). */
export async function spawnPrompter(options: {
  databaseUrl: string;
  args: string[];
  env?: Record<string, string | undefined>;
  ready(output: string): boolean | Promise<boolean>;
  readyTimeoutMs?: number;
  /** In a process group of its own, as a command run from a terminal is (signal the group with kill(-pid)). */
  detached?: boolean;
}): Promise<PrompterProcess> {
  const ownExportDir = options.env?.EXPORT_DIR ? undefined : await mkdtemp(path.join(tmpdir(), "prompter-exports-"));
  const exportDir = options.env?.EXPORT_DIR ?? ownExportDir!;
  const child = spawn(path.join(projectRoot, "node_modules/.bin/node"), ["src/cli.ts", ...options.args], {
    cwd: projectRoot,
    env: environment(options.databaseUrl, exportDir, options.env),
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.detached,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  spawned.set(child, { spawnedByTest: inTest });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  void exited.then(() => spawned.delete(child));
  let running = true;
  void exited.then(() => (running = false));

  const stop = async () => {
    if (running) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    if (ownExportDir) await rm(ownExportDir, { recursive: true, force: true });
    return exited;
  };
  const started: PrompterProcess = {
    child,
    exportDir,
    output: () => ({ stdout, stderr }),
    logLines: () => stdout.split("\n").slice(0, -1).map((line) => JSON.parse(line)),
    exited,
    stop,
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    if (!running) break;
    if (await options.ready(stdout + stderr)) return started;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stop();
  const reason = running ? "was not ready in time" : `exited with code ${await exited} before it was ready`;
  throw new Error(`prompter ${options.args.join(" ")} ${reason}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`);
}

/** The gateway's address once it logs that it listens. */
export function listeningUrl(output: string): string | undefined {
  const port = /listening on http:\/\/[^\s:]+:(\d+)/.exec(output)?.[1];
  return port ? `http://127.0.0.1:${port}` : undefined;
}

/** `prompter server` (or `args`) on a free port, once GET /healthz answers. */
export async function startServer(options: {
  databaseUrl: string;
  env?: Record<string, string | undefined>;
  /** CLI arguments; default ["server"] (the gateway alone). */
  args?: string[];
  readyTimeoutMs?: number;
  detached?: boolean;
}): Promise<RunningServer> {
  const started = await spawnPrompter({
    ...options,
    args: options.args ?? ["server"],
    async ready(output) {
      const baseUrl = listeningUrl(output);
      return !!baseUrl && (await fetch(`${baseUrl}/healthz`).then((r) => r.ok, () => false));
    },
  });
  return { ...started, baseUrl: listeningUrl(started.output().stdout)! };
}

/** A token as the gateway issues it, signed with TEST_JWT_SECRET unless `secret` says otherwise. */
export function signTestToken(
  userId: string | number,
  options: { admin?: boolean; expiresInSeconds?: number; secret?: string; claims?: Record<string, unknown> } = {},
): string {
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign(
    {
      role: options.admin ? "app_admin" : "app_user",
      user_id: String(userId),
      exp: now + (options.expiresInSeconds ?? 3600),
      token_generation: 0,
      ...options.claims,
    },
    options.secret ?? TEST_JWT_SECRET,
    { algorithm: "HS256", audience: "prompter", issuer: "prompter" },
  );
}

export interface GraphQLResponse {
  status: number;
  data?: Record<string, any>;
  errors?: { message: string; path?: string[]; extensions?: { code?: string; retryAfterSeconds?: number } }[];
  /** Set when the gateway refused the request before GraphQL (say, a bad token). */
  error?: { code: string; message: string };
}

/** POSTs a GraphQL operation, as the token's owner when a token is given. */
export async function graphql(
  server: RunningServer,
  query: string,
  variables: Record<string, unknown> = {},
  token?: string,
): Promise<GraphQLResponse> {
  const response = await fetch(`${server.baseUrl}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, ...(await response.json()) };
}
