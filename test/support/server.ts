// A real prompter process (`prompter server` by default) on a free port against
// a test database, for HTTP tests: spawned with the project's Node 24, ready
// once GET /healthz answers. Also helpers to sign tokens and call GraphQL.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import jwt from "jsonwebtoken";

const projectRoot = fileURLToPath(new URL("../..", import.meta.url));

/** The JWT_SECRET test servers run with, unless a test overrides it. */
export const TEST_JWT_SECRET = "test-secret-for-http-tests-only-0123456789";

export interface RunningServer {
  baseUrl: string;
  /** EXPORT_DIR of the process. */
  exportDir: string;
  /** Everything the process has printed so far. */
  output(): { stdout: string; stderr: string };
  /** SIGTERM, then waits for the process to exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
}

export async function startServer(options: {
  databaseUrl: string;
  /** Overrides of the environment; undefined removes a variable. */
  env?: Record<string, string | undefined>;
  /** CLI arguments; default ["server"] (the gateway alone). */
  args?: string[];
  readyTimeoutMs?: number;
}): Promise<RunningServer> {
  const ownExportDir = options.env?.EXPORT_DIR ? undefined : await mkdtemp(path.join(tmpdir(), "prompter-exports-"));
  const exportDir = options.env?.EXPORT_DIR ?? ownExportDir!;
  const env: Record<string, string> = {};
  const merged = {
    ...process.env,
    DATABASE_URL: options.databaseUrl,
    PORT: "0",
    HOST: "127.0.0.1",
    JWT_SECRET: TEST_JWT_SECRET,
    EXPORT_DIR: exportDir,
    ...options.env,
  };
  for (const [name, value] of Object.entries(merged)) if (value !== undefined) env[name] = value;

  const child = spawn(path.join(projectRoot, "node_modules/.bin/node"), ["src/cli.ts", ...(options.args ?? ["server"])], {
    cwd: projectRoot,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
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
  };
  const fail = async (reason: string): Promise<never> => {
    await stop();
    throw new Error(`prompter ${options.args?.[0] ?? "server"} ${reason}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`);
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  let baseUrl: string | undefined;
  while (Date.now() < deadline) {
    if (!running) return fail(`exited with code ${await exited} before it was ready`);
    const port = /listening on http:\/\/[^\s:]+:(\d+)/.exec(stderr + stdout)?.[1];
    baseUrl = port ? `http://127.0.0.1:${port}` : undefined;
    if (baseUrl && (await fetch(`${baseUrl}/healthz`).then((r) => r.ok, () => false))) {
      return { baseUrl, exportDir, output: () => ({ stdout, stderr }), stop };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return fail("did not answer /healthz in time");
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
      ...options.claims,
    },
    options.secret ?? TEST_JWT_SECRET,
    { algorithm: "HS256", audience: "prompter", issuer: "prompter" },
  );
}

export interface GraphQLResponse {
  status: number;
  data?: Record<string, any>;
  errors?: { message: string; path?: string[]; extensions?: { code?: string } }[];
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
