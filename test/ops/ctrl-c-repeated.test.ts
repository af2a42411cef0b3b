// Ctrl-C on `npm start` with the embedded PostgreSQL, again and again: every
// connection of the gateway and the worker is closed before prompter stops the
// database, so no stop logs a failed database connection (a pool's end()
// resolves once it has asked its connections to close, not once they have).
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { freePort } from "../support/ports.ts";
import { startServer } from "../support/server.ts";

let dir: string;
let port: number;

beforeAll(async () => {
  port = await freePort();
  dir = await mkdtemp(path.join(tmpdir(), "prompter-ctrl-c-repeated-"));
  // PostgreSQL runs as the postgres user when the tests run as root: it must reach its directory.
  await chmod(dir, 0o755);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

it("4 of 4 stops by SIGINT to the process group log no failed database connection", async () => {
  const failures: string[][] = [];
  for (let stop = 0; stop < 4; stop++) {
    const server = await startServer({
      databaseUrl: "",
      args: ["start"],
      env: { DATABASE_URL: undefined, EMBEDDED_PG_DIR: path.join(dir, "pg"), EMBEDDED_PG_PORT: String(port), EXPORT_DIR: path.join(dir, "exports") },
      detached: true,
      readyTimeoutMs: 180_000,
    });
    // The gateway's and the worker's pools both hold connections.
    expect((await fetch(`${server.baseUrl}/readyz`)).status).toBe(200);
    process.kill(-server.child.pid!, "SIGINT");
    expect(await server.exited).toBe(0);
    failures.push(server.logLines().filter((line) => /connection failed/.test(line.msg)).map((line) => `${line.pool}: ${line.error}`));
  }
  expect(failures).toEqual([[], [], [], []]);
}, 600_000);
