// The gateway alone (GraphQL and REST), to run apart from the worker. It does
// not migrate: run `npx prompter migrate` first; /readyz reports pending migrations.
import { loadConfig } from "../config.ts";
import { openDatabase } from "../db/database.ts";
import { startGateway } from "../server/index.ts";
import { stopOnSignal } from "./start.ts";

export default async function server(): Promise<void> {
  const config = loadConfig();
  const log = (message: string) => process.stderr.write(`${message}\n`);
  const database = await openDatabase(config, log);
  const gateway = await startGateway(config, database.url, log);
  stopOnSignal(log, [() => gateway.close(), () => database.stop()]);
}
