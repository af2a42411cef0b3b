// Logs for people and for machines: on a terminal (a pseudo-terminal from
// util-linux's `script`) the lines are pino-pretty's; through a pipe they are
// JSON, as every other test reads them (test/support/server.ts). Ctrl-C typed at
// that terminal stops it.
import { spawn } from "node:child_process";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { useTestDatabase } from "../support/db.ts";
import { TEST_JWT_SECRET } from "../support/server.ts";

const db = useTestDatabase();
let stop: (() => Promise<void>) | undefined;
afterAll(() => stop?.());

it("prints pretty lines, not JSON, when stdout is a terminal", async () => {
  const command = `${path.resolve("node_modules/.bin/node")} src/cli.ts server`;
  const child = spawn("script", ["-qfec", command, "/dev/null"], {
    env: { ...process.env, DATABASE_URL: db.url, AUTH_DATABASE_URL: db.authUrl, PORT: "0", HOST: "127.0.0.1", JWT_SECRET: TEST_JWT_SECRET },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  stop = async () => {
    // Ctrl-C typed at the terminal: the pty turns it into SIGINT for prompter, which stops; then script ends.
    child.stdin.write("\x03");
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
  };
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 60_000;
  while (!output.includes("prompter gateway listening") && Date.now() < deadline && child.exitCode === null) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const plain = output.replace(/\x1b\[[0-9;]*m/g, "");
  expect(plain).toMatch(/^\[\d\d:\d\d:\d\d\] INFO: prompter gateway listening on http:\/\/127\.0\.0\.1:\d+/m);
  expect(plain).not.toMatch(/^\{"level"/m);
  const stopping = stop!;
  stop = undefined;
  await stopping();
  expect(output.replace(/\x1b\[[0-9;]*m/g, "")).toMatch(/INFO: SIGINT: shutting down/);
}, 90_000);
