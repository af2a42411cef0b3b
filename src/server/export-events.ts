// Wakes requests waiting for an export. The worker notifies channel
// prompter_exports with the export id on every status change; one LISTEN
// connection per gateway serves all waiting requests.
import pg from "pg";
import type { Log } from "../log.ts";

export const EXPORTS_CHANNEL = "prompter_exports";

export function exportEvents(databaseUrl: string, log: Log) {
  const waiters = new Map<string, Set<() => void>>();
  let listener: Promise<pg.Client> | undefined;
  let closed = false;

  function wakeAll() {
    for (const set of waiters.values()) for (const wake of set) wake();
  }

  function listening(): Promise<pg.Client> {
    if (listener) return listener;
    const client = new pg.Client({ connectionString: databaseUrl, application_name: "prompter-gateway-listen" });
    const connecting = (async () => {
      await client.connect();
      await client.query(`listen ${EXPORTS_CHANNEL}`);
      return client;
    })();
    const lost = (error?: Error) => {
      if (listener !== connecting) return;
      if (error) log.warn({ error: error.message }, "export listener lost its connection");
      listener = undefined;
      client.end().catch(() => {});
      // Waiting requests re-read their export and listen again on a new connection.
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
     * whenever its id is notified. Returns the last value read.
     */
    async waitFor<T>(exportId: string, seconds: number, read: () => Promise<T>, finished: (value: T) => boolean): Promise<T> {
      const deadline = Date.now() + seconds * 1000;
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
          if (!closed) await listening();
          notified = false;
          // Read after listening, so a change between the two is never missed.
          const value = await read();
          const remaining = deadline - Date.now();
          if (finished(value) || remaining <= 0 || closed) return value;
          if (!notified) {
            let timer: NodeJS.Timeout | undefined;
            await new Promise<void>((resolve) => {
              wake = resolve;
              timer = setTimeout(resolve, remaining);
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
