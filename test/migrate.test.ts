import { describe, expect, inject, it } from "vitest";
import { randomBytes } from "node:crypto";
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
        "select to_regprocedure('app_public.current_user_id()') as current_user_id, to_regprocedure('app_public.request_export(text,jsonb,text,jsonb)') as request_export",
      );
      expect(rows[0]).toEqual({ current_user_id: "app_public.current_user_id()", request_export: "app_public.request_export(text,jsonb,text,jsonb)" });
      const agents = await client.query("select name from app_public.agents order by name");
      expect(agents.rows.map((r) => r.name)).toEqual(["domain", "structure", "syntax"]);
    } finally {
      await client.end();
      await database.drop();
    }
  });

  it("upgrades a database of the previous release, keeping each SQL login's statement timeout and every row", async () => {
    const database = await createDatabase();
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    const login = `upgrade_${randomBytes(5).toString("hex")}`;
    try {
      // Back to the state before 000006 (and the migrations after it, which run again), with a login made the old way:
      // its limit only in the role's settings.
      await client.query(`
        drop table app_private.process_locks, app_private.export_rate_locks;
        alter table app_private.sql_logins drop column statement_timeout, drop column idle_in_transaction_timeout;
        delete from graphile_migrate.migrations where filename >= '000006.sql';
        create role ${login} nologin in role app_reader;
        alter role ${login} set statement_timeout = '30000ms';
        alter role ${login} set idle_in_transaction_session_timeout = '10min'`);
      const { rows: [user] } = await client.query("insert into app_public.users (username) values ($1) returning id", [login]);
      await client.query("insert into app_private.sql_logins (login, user_id) values ($1, $2)", [login, user.id]);
      const before = (await client.query("select count(*)::int as n from app_public.users")).rows[0].n;

      await migrateDatabase(database.url);

      const { rows } = await client.query(
        "select statement_timeout::text, idle_in_transaction_timeout::text from app_private.sql_logins where login = $1", [login]);
      expect(rows).toEqual([{ statement_timeout: "00:00:30", idle_in_transaction_timeout: "00:10:00" }]);
      const listed = await client.query("select statement_timeout, settings_changed from app_private.list_sql_logins() where login = $1", [login]);
      expect(listed.rows).toEqual([{ statement_timeout: "30000ms", settings_changed: false }]);
      expect((await client.query("select count(*)::int as n from app_public.users")).rows[0].n).toBe(before);
      const locks = await client.query("select name from app_private.process_locks order by name");
      expect(locks.rows.map((r) => r.name)).toEqual(["migrate", "release_dead_workers", "sql_login_limits"]);
    } finally {
      await client.end();
      await database.drop();
      const root = new pg.Client({ connectionString: inject("serverUrl") });
      await root.connect();
      await root.query(`drop role if exists ${login}`).finally(() => root.end());
    }
  });
});
