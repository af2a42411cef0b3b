// Which database the process talks to: DATABASE_URL, or an embedded PostgreSQL
// started on demand and stopped with the process.
import type { Config } from "../config.ts";
import path from "node:path";
import { ConfigError } from "../config.ts";
import { generatedPassword, provisionDatabase, startEmbeddedPostgres, withCredentials } from "./embedded.ts";

export interface Database {
  /** The owner's connection: migrations, the worker, the CLI. */
  url: string;
  /** The authenticator's connection, the gateway's only one (undefined when AUTH_DATABASE_URL is unset). */
  authUrl: string | undefined;
  stop(): Promise<void>;
}

const EMBEDDED_DATABASE = "prompter";
const EMBEDDED_OWNER = "prompter_owner";
const EMBEDDED_AUTHENTICATOR = "authenticator";

export async function openDatabase(config: Config, log: (message: string) => void): Promise<Database> {
  if (config.databaseUrl) return { url: config.databaseUrl, authUrl: config.authDatabaseUrl, async stop() {} };
  const where = `${config.embeddedPgDir} on port ${config.embeddedPgPort}`;
  const embedded = await startEmbeddedPostgres({ dir: config.embeddedPgDir, port: config.embeddedPgPort });
  log(embedded.reused
    ? `DATABASE_URL is not set: using the embedded PostgreSQL already running in ${where}`
    : `DATABASE_URL is not set: started embedded PostgreSQL in ${where}`);
  // The superuser makes the owner and its database, and is used for nothing else.
  const ownerPassword = await generatedPassword(path.join(config.embeddedPgDir, "owner-password"));
  await provisionDatabase(embedded.url("postgres"), { database: EMBEDDED_DATABASE, owner: EMBEDDED_OWNER, ownerPassword });
  const authenticatorPassword = await generatedPassword(path.join(config.embeddedPgDir, "authenticator-password"));
  return {
    url: withCredentials(embedded.url(EMBEDDED_DATABASE), EMBEDDED_OWNER, ownerPassword),
    authUrl: withCredentials(embedded.url(EMBEDDED_DATABASE), EMBEDDED_AUTHENTICATOR, authenticatorPassword),
    stop: () => embedded.stop(),
  };
}

/** The gateway's connection: the authenticator, never the owner. */
export function gatewayUrl(database: Database): string {
  if (!database.authUrl) {
    throw new ConfigError(
      "AUTH_DATABASE_URL must be set: the gateway logs in as the authenticator role, never as DATABASE_URL's owner (see README, Deploy on managed PostgreSQL).",
    );
  }
  return database.authUrl;
}
