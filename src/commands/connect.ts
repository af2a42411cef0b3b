// Shared by the commands: the configured database, migrated, and a way to close it.
import pg from "pg";
import { loadConfig } from "../config.ts";
import { openDatabase, type Database } from "../db/database.ts";
import { migrateDatabase } from "../db/migrate.ts";
import { UsageError } from "./args.ts";

/** Runs `work` against the configured database; the schema's own errors (class PR) are messages for the operator. */
export async function withDatabase<T>(work: (client: pg.Client, database: Database) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const database = await openDatabase(config, (message) => process.stderr.write(`${message}\n`));
  try {
    await migrateDatabase(database.url, { authenticatorUrl: database.authUrl });
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      return await work(client, database);
    } finally {
      await client.end();
    }
  } catch (error) {
    const code = (error as { code?: unknown })?.code;
    // The schema's own refusals (requests PR, feeds and their formats and filters PF) explain themselves.
    if (typeof code === "string" && /^P[RF]/.test(code)) throw new UsageError((error as Error).message);
    throw error;
  } finally {
    await database.stop();
  }
}

/** The user's id and the claims a token for them carries (role decided in SQL by app_private.jwt_for). */
export async function findUser(client: pg.ClientBase, username: string) {
  const { rows } = await client.query<{ id: string; role: "app_user" | "app_admin"; exp: string; token_generation: number }>(
    "select u.id, t.role, t.exp, t.token_generation from app_public.users u, app_private.jwt_for(u) t where lower(u.username) = lower($1)",
    [username]);
  if (!rows[0]) throw new UsageError(`No user "${username}"; create one with: npx prompter user add ${username}`);
  return rows[0];
}
