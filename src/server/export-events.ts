// Wakes requests waiting for an export. The worker notifies the exports
// channel with the export id on every status change; one LISTEN
// connection per gateway serves all waiting requests. When that connection is
// lost (a database restart, a terminated backend), waiting requests re-read
// their export and poll while it is re-opened, with a growing pause between
// attempts, so a wait outlives the outage if the export finishes in time.
import pg from "pg";
import type { Log } from "../log.ts";
import { isDatabaseUnavailable } from "./errors.ts";

/**
 * Listens on the exports channel, whose name is a secret of the database
 * (app_private.exports_channel) so that no SQL login hears others' export ids.
 * Returns the channel, which notifications name.
 */
export async function listenToExports(client: pg.ClientBase): Promise<string> {
  const { rows: [{ channel }] } = await client.query<{ channel: string }>("select app_hidden.gateway_exports_channel() as channel");
  await client.query(`listen ${client.escapeIdentifier(channel)}`);
  return channel;
}

/** How often a waiting request re-reads its export while nothing is listening. */
const POLL_MS = 1000;
/** Pauses between attempts to listen again: doubling from the first to the last. */
const RELISTEN_DELAY_MS = { first: 500, max: 10_000 };

export function exportEvents(databaseUrl: string, log: Log) {
  const waiters = new Map<string, Set<() => void>>();
  let listener: Promise<pg.Client> | undefined;
  let closed = false;
  let relistenDelay = RELISTEN_DELAY_MS.first;
  /** No attempt to listen before this time (ms since epoch): the last one failed. */
  let nextAttemptAt = 0;

  function wakeAll() {
    for (const set of waiters.values()) for (const wake of set) wake();
  }

  /** The LISTEN connection, opened if need be; rejects if it cannot be (now, or recently). */
  function listening(): Promise<pg.Client> {
    if (listener) return listener;
    if (Date.now() < nextAttemptAt) return Promise.reject(new Error("not listening: waiting to retry"));
    const client = new pg.Client({
      connectionString: databaseUrl,
      application_name: "prompter-gateway-listen",
      connectionTimeoutMillis: 5000,
      keepAlive: true,
    });
    const connecting = (async () => {
      await client.connect();
      await listenToExports(client);
      relistenDelay = RELISTEN_DELAY_MS.first;
      return client;
    })();
    const lost = (error?: Error) => {
      if (listener !== connecting) return;
      if (error) log.warn({ error: error.message, retryInMs: relistenDelay }, "export listener lost its connection");
      listener = undefined;
      nextAttemptAt = Date.now() + relistenDelay;
      relistenDelay = Math.min(relistenDelay * 2, RELISTEN_DELAY_MS.max);
      client.end().catch(() => {});
      // Waiting requests re-read their export, and poll until listening again.
      wakeAll();
    };
    client.on("error", lost);
    client.on("end", () => lost());
    client.on("notification", (message) => {
      for (const wake of waiters.get(message.payload ?? "") ?? []) wake();
    });
    connecting.catch(lost);
    listener = connecting;
    return connecting;
  }

  return {
    /**
     * Reads the export until `finished` says so or `seconds` pass, re-reading
     * whenever its id is notified (or every POLL_MS while not listening, or
     * while the database is unreachable). Returns the last value read, or
     * `known` (what was read before waiting) if no read succeeded.
     */
    async waitFor<T>(exportId: string, seconds: number, read: () => Promise<T>, finished: (value: T) => boolean, known: T): Promise<T> {
      const deadline = Date.now() + seconds * 1000;
      let value = known;
      let notified = false;
      let wake = () => {};
      const onNotify = () => {
        notified = true;
        wake();
      };
      const set = waiters.get(exportId) ?? new Set();
      waiters.set(exportId, set.add(onNotify));
      try {
        for (;;) {
          const listeningNow = !closed && (await listening().then(() => true, () => false));
          notified = false;
          // Read after listening, so a change between the two is never missed.
          // A read that finds the database unreachable is tried again: failing the
          // request would have the client request the export a second time.
          let readFailed = false;
          try {
            value = await read();
          } catch (error) {
            if (!isDatabaseUnavailable(error)) throw error;
            readFailed = true;
          }
          const remaining = deadline - Date.now();
          if (finished(value) || remaining <= 0 || closed) return value;
          if (!notified) {
            let timer: NodeJS.Timeout | undefined;
            await new Promise<void>((resolve) => {
              wake = resolve;
              timer = setTimeout(resolve, listeningNow && !readFailed ? remaining : Math.min(remaining, POLL_MS));
            });
            clearTimeout(timer);
          }
        }
      } finally {
        set.delete(onNotify);
        if (!set.size) waiters.delete(exportId);
      }
    },

    /** Stops listening; waiting requests answer with what they last read. */
    async close(): Promise<void> {
      closed = true;
      const client = await listener?.catch(() => undefined);
      listener = undefined;
      wakeAll();
      await client?.end().catch(() => {});
    },
  };
}

export type ExportEvents = ReturnType<typeof exportEvents>;
