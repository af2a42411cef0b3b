// Helpers for the fault-injection tests: a PostgreSQL cluster of the test's own
// (embedded, on a free port, in a temporary directory) that it can stop and
// start again, a pool that survives that, and bounded waits.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { provisionDatabase, startEmbeddedPostgres, withCredentials, type EmbeddedServer } from "../../src/db/embedded.ts";
import { migrateDatabase } from "../../src/db/migrate.ts";
import { authenticatorOf, TEST_OWNER, TEST_PASSWORD } from "../support/credentials.ts";
import { freePort } from "../support/ports.ts";

/**
 * How long the "database down" tests keep PostgreSQL stopped. The issue asks
 * for 30 s; the suite runs shorter by default to stay fast (FAULT_OUTAGE_SECONDS=30 for the full run).
 */
export const OUTAGE_SECONDS = Number(process.env.FAULT_OUTAGE_SECONDS ?? 5);

export interface ControlledPostgres {
  /** The owner's URL of the test's database on the cluster (its authenticator is authenticatorOf("prompter")). */
  url: string;
  /** A pool for the test's own queries; it reconnects after a restart. */
  pool: pg.Pool;
  /** Shuts the cluster down as `pg_ctl stop -m fast` does: every session is terminated (57P01). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it for good and removes its files. */
  destroy(): Promise<void>;
}

/** A pg pool whose clients may be cut off at any moment (that is the test) without crashing the test process. */
export function faultTolerantPool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

export async function startControlledPostgres(): Promise<ControlledPostgres> {
  const dir = await mkdtemp(path.join(tmpdir(), "prompter-fault-pg-"));
  const port = await freePort();
  let server: EmbeddedServer | undefined = await startEmbeddedPostgres({ dir, port });
  // Deployed as on managed PostgreSQL: the superuser only makes the owner and its database.
  await provisionDatabase(server.url("postgres"), { database: "prompter", owner: TEST_OWNER, ownerPassword: TEST_PASSWORD });
  const url = withCredentials(server.url("prompter"), TEST_OWNER, TEST_PASSWORD);
  await migrateDatabase(url, { authenticatorUrl: withCredentials(url, authenticatorOf("prompter"), TEST_PASSWORD) });
  const pool = faultTolerantPool(url);
  return {
    url,
    pool,
    async stop() {
      await server?.stop();
      server = undefined;
    },
    async start() {
      server = await startEmbeddedPostgres({ dir, port });
    },
    async destroy() {
      await pool.end().catch(() => {});
      await server?.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Answer {
  path: string;
  status: number;
  retryAfter: string | null;
  body: any;
}

/**
 * Calls the gateway as the token's owner with JSON. A request that hangs fails
 * the test after 45 s (longer than any EXPORT_WAIT_SECONDS here), rather than at the test's timeout.
 */
export async function callAs(baseUrl: string, token: string, path: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(`${baseUrl}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    signal: AbortSignal.timeout(45_000),
  });
  return { path, status: response.status, retryAfter: response.headers.get("retry-after"), body: await response.json() };
}

/** Polls until `ready` holds of what `read` returns (a read that throws counts as not ready); fails after `seconds`. */
export async function within<T>(seconds: number, what: string, read: () => Promise<T>, ready: (value: T) => boolean = Boolean): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  let last: unknown;
  for (;;) {
    try {
      const value = await read();
      if (ready(value)) return value;
      last = value;
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`not within ${seconds} s: ${what}; last seen: ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
