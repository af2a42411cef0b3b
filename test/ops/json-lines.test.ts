// Log collectors read stdout one JSON object per line when it is not a
// terminal: nothing else may reach it, from prompter or from a library it
// loads (Grafast warns in plain text when GRAPHILE_ENV is unset as it loads).
import { expect, it } from "vitest";
import { useTestDatabase } from "../support/db.ts";
import { startServer } from "../support/server.ts";

const db = useTestDatabase();

it("prompter start through a pipe: every line on stdout is JSON, and nothing else is printed", async () => {
  const server = await startServer({ databaseUrl: db.url, args: ["start"], env: { GRAPHILE_ENV: undefined, NODE_ENV: undefined } });
  expect((await fetch(`${server.baseUrl}/graphql`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"query":"{ __typename }"}' })).status).toBe(200);
  expect(await server.stop()).toBe(0);
  const { stdout, stderr } = server.output();
  const lines = stdout.split("\n").filter((line) => line !== "");
  const notJson = lines.filter((line) => {
    try {
      return typeof JSON.parse(line) !== "object";
    } catch {
      return true;
    }
  });
  expect(notJson).toEqual([]);
  expect(lines.length).toBeGreaterThan(3);
  expect(stderr).toBe("");
}, 120_000);
