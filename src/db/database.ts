// Which database the process talks to: DATABASE_URL, or an embedded PostgreSQL
// started on demand and stopped with the process.
import type { Config } from "../config.ts";
import { ensureDatabase, startEmbeddedPostgres } from "./embedded.ts";

export interface Database {
  url: string;
  stop(): Promise<void>;
}

const EMBEDDED_DATABASE = "prompter";

export async function openDatabase(config: Config, log: (message: string) => void): Promise<Database> {
  if (config.databaseUrl) return { url: config.databaseUrl, async stop() {} };
  const where = `${config.embeddedPgDir} on port ${config.embeddedPgPort}`;
  const embedded = await startEmbeddedPostgres({ dir: config.embeddedPgDir, port: config.embeddedPgPort });
  log(embedded.reused
    ? `DATABASE_URL is not set: using the embedded PostgreSQL already running in ${where}`
    : `DATABASE_URL is not set: started embedded PostgreSQL in ${where}`);
  await ensureDatabase(embedded.url("postgres"), EMBEDDED_DATABASE);
  return { url: embedded.url(EMBEDDED_DATABASE), stop: () => embedded.stop() };
}
