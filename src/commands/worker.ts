// `npx prompter worker`: runs queued exports and the retention schedule until
// SIGINT/SIGTERM. Start as many as you like against one database; they share the queue.
import { loadConfig } from "../config.ts";
import { openDatabase } from "../db/database.ts";
import { migrateDatabase } from "../db/migrate.ts";
import { startWorker, stderrLog } from "../worker.ts";
import { parseCommandArgs, UsageError } from "./args.ts";
import { stopOnSignal } from "./start.ts";

export default async function worker(args: string[]): Promise<void> {
  const { positionals } = parseCommandArgs(args, {});
  if (positionals.length) throw new UsageError("usage: prompter worker");
  const config = loadConfig();
  const log = (message: string) => stderrLog.info({}, message);
  const database = await openDatabase(config, log);
  await migrateDatabase(database.url);
  const running = await startWorker(config, database.url, stderrLog);
  log(`worker running ${config.workerConcurrency} job(s) at a time; exports in ${config.exportDir}`);
  running.done.catch((error: Error) => {
    stderrLog.error({ error: error.message }, "worker stopped");
    process.exit(1);
  });
  stopOnSignal(log, [() => running.stop(), () => database.stop()]);
}
