// Runs everything in one process: the database (embedded when DATABASE_URL is
// unset), migrations, the gateway and the worker. Stops in order on SIGINT/SIGTERM.
import { loadConfig } from "../config.ts";
import { openDatabase } from "../db/database.ts";
import { migrateDatabase } from "../db/migrate.ts";
import { startGateway } from "../server/index.ts";
import { startWorker, stderrLog } from "../worker.ts";
import { parseCommandArgs } from "./args.ts";

export default async function start(args: string[] = []): Promise<void> {
  const { values } = parseCommandArgs(args, { "no-worker": { type: "boolean", default: false } });
  const config = loadConfig();
  const log = (message: string) => process.stderr.write(`${message}\n`);
  const database = await openDatabase(config, log);
  await migrateDatabase(database.url);
  const gateway = await startGateway(config, database.url, log);
  const worker = values["no-worker"] ? undefined : await startWorker(config, database.url, stderrLog);
  worker?.done.catch((error: Error) => {
    log(`worker stopped: ${error.message}`);
    process.exit(1);
  });
  stopOnSignal(log, [() => gateway.close(), async () => worker?.stop(), () => database.stop()]);
}

/** On SIGINT/SIGTERM runs the stop steps in order (the database last), then exits. */
export function stopOnSignal(log: (message: string) => void, steps: (() => Promise<void>)[]): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: shutting down`);
    let code = 0;
    for (const step of steps) {
      await step().catch((error: Error) => {
        log(`while shutting down: ${error.message}`);
        code = 1;
      });
    }
    process.exit(code);
  };
  process.once("SIGINT", () => void stop("SIGINT"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
}
