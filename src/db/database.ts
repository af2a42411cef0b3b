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
  log(`DATABASE_URL is not set: starting embedded PostgreSQL in ${config.embeddedPgDir} on port ${config.embeddedPgPort}`);
  const embedded = await startEmbeddedPostgres({ dir: config.embeddedPgDir, port: config.embeddedPgPort });
  await ensureDatabase(embedded.url("postgres"), EMBEDDED_DATABASE);
  return { url: embedded.url(EMBEDDED_DATABASE), stop: () => embedded.stop() };
}
