// Export status changes are notified on a channel whose name is the
// database's secret: a SQL login listening on the channel it used to be
// (prompter_exports), or asking for the name, learns no other user's export
// ids, while the owner (and the gateway: test/http/export-flow.test.ts) hears
// every change. Logins are cluster-wide: random names, removed afterwards.
import { afterAll, beforeAll, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { listenToExports } from "../../src/server/export-events.ts";
import { createUser, errorOf, useTestDatabase } from "../support/db.ts";
import { requestExport, useExportWorker, waitForExport } from "./support.ts";

const db = useTestDatabase();
useExportWorker(db);
let login: string;
let loginUrl: string;
const clients: pg.Client[] = [];

beforeAll(async () => {
  const analyst = await createUser(db.pool);
  login = `channel_${randomBytes(5).toString("hex")}`;
  const username = (await db.pool.query("select username from app_public.users where id = $1", [analyst])).rows[0].username;
  const { rows } = await db.pool.query("select generated_password from app_private.add_sql_login($1, $2)", [login, username]);
  const url = new URL(db.url);
  url.username = login;
  url.password = rows[0].generated_password;
  loginUrl = url.toString();
});

afterAll(async () => {
  await Promise.allSettled(clients.map((client) => client.end()));
  await db.pool.query("call app_private.remove_sql_login($1, null)", [login]).catch(() => {});
});

async function connect(url: string): Promise<{ client: pg.Client; heard: { channel: string; payload?: string }[] }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  clients.push(client);
  const heard: { channel: string; payload?: string }[] = [];
  client.on("notification", (message) => heard.push({ channel: message.channel, payload: message.payload }));
  return { client, heard };
}

it("tells a SQL login no other user's export ids; the owner hears each change of them", async () => {
  const spy = await connect(loginUrl);
  await spy.client.query("listen prompter_exports");
  // Nor may it read the channel's name.
  expect((await errorOf(spy.client.query("select app_hidden.gateway_exports_channel()"))).code).toBe("42501");
  expect((await errorOf(spy.client.query("select channel from app_private.notification_channels"))).code).toBe("42501");
  const owner = await connect(db.url);
  const channel = await listenToExports(owner.client);

  const alice = await createUser(db.pool);
  const id = await requestExport(db.pool, { role: "app_user", userId: alice }, "prompt_versions");
  expect((await waitForExport(db.pool, id)).status).toBe("succeeded");
  // A round trip on each connection delivers what was notified before it.
  await owner.client.query("select 1");
  await spy.client.query("select 1");
  expect(owner.heard).toContainEqual({ channel, payload: id });
  expect(spy.heard).toEqual([]);
}, 60_000);
