// README's Metrics table and /metrics agree: every documented metric has
// series from the start (not from its first event, so rate() sees the 0 before
// the 1), and every prompter metric exported is documented. Both lists are read
// at test time, README.md and a running `prompter start`.
import { readFile } from "node:fs/promises";
import { expect, it } from "vitest";
import { useTestDatabase } from "../support/db.ts";
import { startServer } from "../support/server.ts";

const db = useTestDatabase();

/** The metric names in the first column of README's Metrics table. */
async function documentedMetrics(): Promise<string[]> {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
  const section = /^### Metrics\n([\s\S]*?)^#{2,3} /m.exec(readme)![1];
  const firstCells = section.split("\n").filter((line) => line.startsWith("| `")).map((line) => line.split("|")[1]);
  return firstCells.flatMap((cell) => [...cell.matchAll(/`([a-z_:][a-z0-9_:]*)`/g)].map((match) => match[1])).sort();
}

/** Families of /metrics (from their TYPE lines) that have at least one sample. */
function exportedFamilies(text: string): string[] {
  const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((match) => [match[1], match[2]]));
  const sampled = new Set<string>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const name = /^[a-zA-Z_:][\w:]*/.exec(line)![0];
    const family = [name, name.replace(/_(bucket|sum|count)$/, "")].find((candidate) => types.has(candidate));
    if (family) sampled.add(family);
  }
  return [...sampled].sort();
}

it("every metric in README's table is exported from the start by prompter start, and every prompter metric exported is in the table", async () => {
  const documented = await documentedMetrics();
  expect(documented.length).toBeGreaterThan(10);
  const server = await startServer({ databaseUrl: db.url, args: ["start"] });
  try {
    const exported = exportedFamilies(await (await fetch(`${server.baseUrl}/metrics`)).text());
    expect(documented.filter((name) => !exported.includes(name))).toEqual([]);
    expect(exported.filter((name) => name.startsWith("prompter_") && !documented.includes(name))).toEqual([]);
  } finally {
    await server.stop();
  }
}, 120_000);
