import { describe, expect, it } from "vitest";
import pg from "pg";
import { createDatabase } from "./support/db.ts";
import { migrateDatabase } from "../src/db/migrate.ts";

describe("migrate", () => {
  it("creates the functions of sql/functions on a fresh database, and can run again", async () => {
    const database = await createDatabase();
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      // The template is migrated already; start from nothing to prove a fresh install works.
      await client.query("drop schema app_public, app_hidden, app_private, graphile_migrate, graphile_worker cascade");
      await migrateDatabase(database.url);
      await migrateDatabase(database.url);
      const { rows } = await client.query(
        "select to_regprocedure('app_public.current_user_id()') as current_user_id, to_regprocedure('app_public.request_export(text,jsonb)') as request_export",
      );
      expect(rows[0]).toEqual({ current_user_id: "app_public.current_user_id()", request_export: "app_public.request_export(text,jsonb)" });
      const agents = await client.query("select name from app_public.agents order by name");
      expect(agents.rows.map((r) => r.name)).toEqual(["domain", "structure", "syntax"]);
    } finally {
      await client.end();
      await database.drop();
    }
  });
});
