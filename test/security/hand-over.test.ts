// A database the previous release made (as the superuser it ran as) is handed
// to a plain owner and migrated on by it: every row, figure and queued export
// survives, and the worker still exports as the requester.
import { afterAll, expect, inject, it } from "vitest";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { provisionDatabase, withCredentials, withDatabaseName } from "../../src/db/embedded.ts";
import { migrateDatabase } from "../../src/db/migrate.ts";
import { authenticatorOf, TEST_PASSWORD } from "../support/credentials.ts";
import { asSuperuser } from "../support/db.ts";
import { buildPreviousRelease } from "../support/previous-release.ts";
import { parseCsv, startTestWorker, waitUntil } from "../exports/support.ts";
import { readFile } from "node:fs/promises";

const name = `prompter_test_upgrade_${randomBytes(4).toString("hex")}`;
const login = `${name}_reader`;
// An owner of its own: the hand-over grants it roles, which the suite's owner must not collect.
const owner = `${name}_owner`;
afterAll(async () => {
  await asSuperuser(async (client) => {
    await client.query(`drop database if exists ${name} with (force)`);
    for (const role of [login, authenticatorOf(name), owner]) await client.query(`drop role if exists ${role}`);
  });
});

/** Everything a user could see or export, read by the owner (who bypasses RLS). */
async function snapshot(client: pg.Client) {
  const count = async (table: string) => (await client.query(`select count(*)::int from ${table}`)).rows[0].count;
  const tables = ["app_public.users", "app_public.prompts", "app_public.prompt_versions", "app_public.judge_scores",
    "app_public.best_heads", "app_public.exports", "app_private.user_secrets", "app_private.sql_logins"];
  const counts = Object.fromEntries(await Promise.all(tables.map(async (t) => [t, await count(t)])));
  await client.query("begin");
  await client.query("set local role app_admin");
  // The previous release's columns (the interval after them is new: test/upgrade.test.ts).
  const effectiveness = (await client.query("select agent, wins, total, win_rate, avg_score, scored from app_public.agent_effectiveness order by agent")).rows;
  await client.query("rollback");
  return { counts, effectiveness };
}

it("hands the database to a plain owner and keeps every row, figure and queued export", async () => {
  await asSuperuser((client) => client.query(`create database ${name}`));
  const superuserDbUrl = withDatabaseName(inject("superuserUrl"), name);
  await buildPreviousRelease(superuserDbUrl);
  const old = new pg.Client({ connectionString: superuserDbUrl });
  await old.connect();
  let before;
  let exportId: string;
  let aliceId: string;
  try {
    aliceId = (await old.query("select app_private.add_user('alice', 'alice password', false) as id")).rows[0].id;
    await old.query("select app_private.generate_demo($1, 40)", [aliceId]);
    await old.query("select * from app_private.add_sql_login($1, 'alice', $2)", [login, TEST_PASSWORD]);
    await old.query("begin");
    await old.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [aliceId]);
    exportId = (await old.query("select id from app_public.request_export('prompt_versions')")).rows[0].id;
    await old.query("commit");
    before = await snapshot(old);
  } finally {
    await old.end();
  }

  await provisionDatabase(inject("superuserUrl"), { database: name, owner, ownerPassword: TEST_PASSWORD });
  const ownerUrl = withCredentials(superuserDbUrl, owner, TEST_PASSWORD);
  await migrateDatabase(ownerUrl, { authenticatorUrl: withCredentials(ownerUrl, authenticatorOf(name), TEST_PASSWORD) });

  const asOwner = new pg.Client({ connectionString: ownerUrl });
  await asOwner.connect();
  const exportDir = await mkdtemp(path.join(tmpdir(), "prompter-upgrade-"));
  const worker = await startTestWorker(ownerUrl, exportDir);
  try {
    expect(await snapshot(asOwner)).toEqual(before);
    const { rows: foreign } = await asOwner.query(
      `select distinct pg_get_userbyid(c.relowner) as owner from pg_class c
        where c.relnamespace in ('app_public'::regnamespace, 'app_hidden'::regnamespace, 'app_private'::regnamespace,
                                 'graphile_worker'::regnamespace, 'graphile_migrate'::regnamespace)`,
    );
    expect(foreign).toEqual([{ owner }]);
    // The export queued before the upgrade runs as alice, and holds her versions.
    const done = await waitUntil(
      async () => (await asOwner.query("select status, file_name, rows from app_public.exports where id = $1", [exportId])).rows[0],
      (row) => row.status === "succeeded" || row.status === "failed",
      "the export queued before the upgrade",
    );
    expect(done.status).toBe("succeeded");
    const csv = parseCsv(await readFile(path.join(exportDir, done.file_name)));
    expect(csv.length - 1).toBe(before.counts["app_public.prompt_versions"]);
    expect(new Set(csv.slice(1).map((row) => row[2]))).toEqual(new Set([aliceId]));
    // The SQL login made by the previous release still reads alice's data.
    const reader = new pg.Client({ connectionString: withCredentials(ownerUrl, login, TEST_PASSWORD) });
    await reader.connect();
    expect((await reader.query("select count(*)::int from app_public.prompts")).rows[0].count).toBe(40);
    await reader.end();
  } finally {
    await worker.stop();
    await asOwner.end();
    await rm(exportDir, { recursive: true, force: true });
  }
});
