// Runs everything in one process: the database (embedded when DATABASE_URL is
// unset), migrations, the gateway and the worker. Stops in order on SIGINT/SIGTERM.
import { createServer } from "node:http";
import { loadConfig } from "../config.ts";
import { openDatabase } from "../db/database.ts";
import { migrateDatabase } from "../db/migrate.ts";

export default async function start(): Promise<void> {
  const config = loadConfig();
  const log = (message: string) => process.stderr.write(`${message}\n`);
  const database = await openDatabase(config, log);
  await migrateDatabase(database.url);
  const server = createServer((req, res) => {
    if (req.url === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
  log(`prompter listening on http://localhost:${config.port}`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: shutting down`);
    await new Promise((resolve) => server.close(resolve));
    await database.stop();
    process.exit(0);
  };
  process.once("SIGINT", () => void stop("SIGINT"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
}
