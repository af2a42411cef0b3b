// A pg pool that outlives its connections: when the database restarts or a
// backend is terminated, node-pg emits "error" on the client, and on a client
// that is checked out (say, mid-query) nothing else listens, so the process
// would crash. Here every client gets a listener; the failed query rejects, the
// broken client is discarded, and the pool opens new connections on demand.
import pg from "pg";
import type { Log } from "../log.ts";

export function resilientPool(options: pg.PoolConfig & { application_name: string }, log: Log): pg.Pool {
  const pool = new pg.Pool({
    // Notice a peer that vanished without closing the connection (host lost, network cut).
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...options,
  });
  const name = options.application_name;
  const open = new Set<pg.Client>();
  openConnections.set(pool, open);
  pool.on("error", (error) => log.warn({ pool: name, error: error.message }, "idle database connection failed; the pool replaces it"));
  pool.on("connect", (client) => {
    open.add(client);
    client.once("end", () => open.delete(client));
    client.on("error", (error) => {
      if (!closedOnPurpose.has(client)) log.warn({ pool: name, error: error.message }, "database connection failed");
    });
  });
  return pool;
}

const closedOnPurpose = new WeakSet<pg.ClientBase>();

/** Closes a checked-out client's connection at once (its transaction ends with it), as no failure of the database. */
export function closeConnection(client: pg.ClientBase): void {
  closedOnPurpose.add(client);
  (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
}

/** The connections of each resilient pool that have not closed yet. */
const openConnections = new WeakMap<pg.Pool, Set<pg.Client>>();

/** How long closePool waits for connections to close: one whose server went silent never does. */
const CLOSE_WAIT_MS = 5000;

/**
 * Ends the pool, and resolves once every one of its connections has closed
 * (or after CLOSE_WAIT_MS): pg's end() resolves as soon as it has asked them
 * to close, and a database stopped in between (the embedded one, on Ctrl-C)
 * would end them with an error.
 */
export async function closePool(pool: pg.Pool): Promise<void> {
  const closed = [...(openConnections.get(pool) ?? [])].map((client) => new Promise((resolve) => client.once("end", resolve)));
  await pool.end();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(closed), new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)))]);
  clearTimeout(timer);
}
