// Once per `npm test`: a PostgreSQL (DATABASE_URL's server, or an embedded one),
// and a template database migrated to the current schema that each test file clones.
import type { TestProject } from "vitest/node";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { startEmbeddedPostgres, type EmbeddedServer } from "../../src/db/embedded.ts";
import { migrateDatabase } from "../../src/db/migrate.ts";

declare module "vitest" {
  export interface ProvidedContext {
    serverUrl: string;
    templateDatabase: string;
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export default async function setup(project: TestProject) {
  let embedded: EmbeddedServer | undefined;
  let serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    embedded = await startEmbeddedPostgres({
      dir: await mkdtemp(path.join(tmpdir(), "prompter-test-pg-")),
      port: Number(process.env.TEST_PG_PORT ?? 54339),
      ephemeral: true,
    });
    serverUrl = embedded.url("postgres");
  }
  const templateDatabase = `prompter_test_template_${process.pid}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${templateDatabase}`);
  await admin.query(`create database ${templateDatabase}`);
  await migrateDatabase(withDatabase(serverUrl, templateDatabase));
  project.provide("serverUrl", serverUrl);
  project.provide("templateDatabase", templateDatabase);

  return async () => {
    await admin.query(`drop database if exists ${templateDatabase} with (force)`);
    await admin.end();
    await embedded?.stop();
  };
}
