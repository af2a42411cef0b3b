// Shared by the commands: the configured database, migrated, and a way to close it.
import pg from "pg";
import { loadConfig } from "../config.ts";
import { openDatabase, type Database } from "../db/database.ts";
import { migrateDatabase } from "../db/migrate.ts";

export async function withDatabase<T>(work: (client: pg.Client, database: Database) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const database = await openDatabase(config, (message) => process.stderr.write(`${message}\n`));
  try {
    await migrateDatabase(database.url);
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      return await work(client, database);
    } finally {
      await client.end();
    }
  } finally {
    await database.stop();
  }
}
