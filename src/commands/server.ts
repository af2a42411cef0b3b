// The gateway alone (GraphQL and REST), to run apart from the worker. It does
// not migrate: run `npx prompter migrate` first; /readyz reports pending
// migrations, and whether any worker process is alive.
import { loadConfig } from "../config.ts";
import { gatewayUrl, openDatabase } from "../db/database.ts";
import { workerAlive } from "../heartbeats.ts";
import { createLogger } from "../log.ts";
import { startGateway } from "../server/index.ts";
import { stopOnSignal } from "./start.ts";

export default async function server(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config).child({ component: "gateway" });
  const database = await openDatabase(config, (message) => log.info({}, message));
  const gateway = await startGateway(config, gatewayUrl(database), log, {
    readinessChecks: { worker: workerAlive(config.workerDeadAfterSeconds) },
  });
  stopOnSignal(log, [() => gateway.close(), () => database.stop()]);
}
