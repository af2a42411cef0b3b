// Once per `npm test`: a PostgreSQL (DATABASE_URL's server, or an embedded
// one), a database owner that is NOT a superuser (the superuser only creates
// it, as a DBA would on managed PostgreSQL), and a template database migrated
// by that owner, which each test file clones.
import type { TestProject } from "vitest/node";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { startEmbeddedPostgres, withCredentials, withDatabaseName, type EmbeddedServer } from "../../src/db/embedded.ts";
import { migrateDatabase } from "../../src/db/migrate.ts";
import { TEST_OWNER, TEST_PASSWORD } from "./credentials.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** The owner's connection to the server's maintenance database. */
    serverUrl: string;
    /** The superuser's, for what only a DBA does: ending other roles' sessions, dropping test databases. */
    superuserUrl: string;
    templateDatabase: string;
  }
}

export default async function setup(project: TestProject) {
  let embedded: EmbeddedServer | undefined;
  let superuserUrl = process.env.DATABASE_URL;
  if (!superuserUrl) {
    embedded = await startEmbeddedPostgres({
      dir: await mkdtemp(path.join(tmpdir(), "prompter-test-pg-")),
      port: Number(process.env.TEST_PG_PORT ?? 54339),
      ephemeral: true,
    });
    superuserUrl = embedded.url("postgres");
  }
  const superuser = new pg.Client({ connectionString: superuserUrl });
  await superuser.connect();
  const { rowCount: ownerExists } = await superuser.query("select from pg_roles where rolname = $1", [TEST_OWNER]);
  await superuser.query(
    `${ownerExists ? "alter" : "create"} role ${TEST_OWNER} login createrole createdb nosuperuser password '${TEST_PASSWORD}'`,
  );
  await superuser.end();

  const serverUrl = withCredentials(superuserUrl, TEST_OWNER, TEST_PASSWORD);
  const templateDatabase = `prompter_test_template_${process.pid}`;
  const owner = new pg.Client({ connectionString: serverUrl });
  await owner.connect();
  await owner.query(`drop database if exists ${templateDatabase}`);
  await owner.query(`create database ${templateDatabase}`);
  await migrateDatabase(withDatabaseName(serverUrl, templateDatabase));
  project.provide("serverUrl", serverUrl);
  project.provide("superuserUrl", superuserUrl);
  project.provide("templateDatabase", templateDatabase);

  return async () => {
    await owner.query(`drop database if exists ${templateDatabase} with (force)`);
    await owner.end();
    await embedded?.stop();
  };
}
