// An export runs with the rights its requester has when it starts, not when it
// was asked for: queued while no worker runs, the requester then demoted (user
// demote), disabled, or its SQL login removed, the export fails for good with a
// code saying why, and writes no file; an unchanged requester's export, queued
// alongside, succeeds. Logins are cluster-wide: random names, removed afterwards.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import pg from "pg";
import { createUser, useTestDatabase } from "../support/db.ts";
import { type ExportRow, readExport, requestExport, startTestWorker, useExportDirPerTest, waitForExport } from "./support.ts";

const db = useTestDatabase();
const exportDir = useExportDirPerTest();
const logins: string[] = [];

async function usernameOf(userId: string): Promise<string> {
  return (await db.pool.query("select username from app_public.users where id = $1", [userId])).rows[0].username;
}

/** A login of the user (admin: reads everyone's), connected with its password. */
async function loginOf(userId: string, isAdmin: boolean): Promise<{ login: string; client: pg.Client }> {
  const login = `rights_${randomBytes(5).toString("hex")}`;
  logins.push(login);
  const { rows } = await db.pool.query<{ generated_password: string }>(
    "select generated_password from app_private.add_sql_login($1, $2, is_admin => $3)", [login, await usernameOf(userId), isAdmin]);
  const url = new URL(db.url);
  url.username = login;
  url.password = rows[0].generated_password;
  const client = new pg.Client({ connectionString: url.toString() });
  client.on("error", () => {});
  await client.connect();
  return { login, client };
}

afterAll(async () => {
  for (const login of logins) await db.pool.query("call app_private.remove_sql_login($1, null)", [login]).catch(() => {});
});

/** Starts a worker, waits for every export to finish, stops the worker. */
async function runQueued(ids: string[]): Promise<ExportRow[]> {
  const worker = await startTestWorker(db.url, exportDir.dir);
  try {
    const rows: ExportRow[] = [];
    for (const id of ids) rows.push(await waitForExport(db.pool, id));
    return rows;
  } finally {
    await worker.stop();
  }
}

const refused = (code: string) => expect.objectContaining({ status: "failed", error_code: code, file_name: null, rows: null });

describe("an export queued before its requester lost rights", () => {
  let admin: string;
  let bob: string;
  beforeAll(async () => {
    admin = await createUser(db.pool, { admin: true });
    bob = await createUser(db.pool);
    await db.pool.query("select app_private.generate_demo($1, 3)", [bob]);
  });

  it("of a demoted admin, fails with PDEXA and holds nobody's rows; of a disabled user, PDEXD; an unchanged user's succeeds", async () => {
    const demoted = await requestExport(db.pool, { role: "app_admin", userId: admin }, "prompt_versions");
    const disabledUser = await createUser(db.pool);
    const disabled = await requestExport(db.pool, { role: "app_user", userId: disabledUser }, "prompt_versions");
    const unchanged = await requestExport(db.pool, { role: "app_user", userId: bob }, "prompt_versions");
    await db.pool.query("select app_private.set_user_admin($1, false)", [await usernameOf(admin)]);
    await db.pool.query("select app_private.set_user_disabled($1, true)", [await usernameOf(disabledUser)]);

    const [demotedRow, disabledRow, unchangedRow] = await runQueued([demoted, disabled, unchanged]);
    expect(demotedRow).toEqual(refused("PDEXA"));
    expect(demotedRow.error_message).toMatch(/no longer one/);
    expect(disabledRow).toEqual(refused("PDEXD"));
    expect(unchangedRow).toEqual(expect.objectContaining({ status: "succeeded", error_code: null }));
    expect(Number(unchangedRow.rows)).toBe(3 * 3); // bob's versions, as bob
    // Only the unchanged user's file was written.
    expect((await readdir(exportDir.dir, { recursive: true })).filter((name) => name.endsWith(".csv"))).toHaveLength(1);
  }, 60_000);

  it("of an admin SQL login whose user was demoted, fails with PDEXA; of a removed SQL login, PDEXL", async () => {
    const auditor = await createUser(db.pool, { admin: true });
    const analyst = await createUser(db.pool);
    const adminLogin = await loginOf(auditor, true);
    const readerLogin = await loginOf(analyst, false);
    const viaLogin = async (client: pg.Client) =>
      (await client.query<{ id: string }>("select id from app_public.request_export('prompt_versions')")).rows[0].id;
    const everyones = await viaLogin(adminLogin.client);
    const own = await viaLogin(readerLogin.client);
    await adminLogin.client.end();
    await readerLogin.client.end();
    await db.pool.query("select app_private.set_user_admin($1, false)", [await usernameOf(auditor)]);
    await db.pool.query("call app_private.remove_sql_login($1, null)", [readerLogin.login]);

    const [everyonesRow, ownRow] = await runQueued([everyones, own]);
    expect(everyonesRow).toEqual(refused("PDEXA"));
    expect(ownRow).toEqual(refused("PDEXL"));
    expect((await readExport(db.pool, own)).attempts).toBe(1); // failed for good, not retried
  }, 60_000);
});
