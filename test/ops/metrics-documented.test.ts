// README's Metrics table and /metrics agree: every documented metric has
// series from the start (not from its first event, so rate() sees the 0 before
// the 1), and every prompter metric exported is documented. Both lists are read
// at test time, README.md and a running `prompter start`.
import { readFile } from "node:fs/promises";
import { expect, it } from "vitest";
import { useTestDatabase } from "../support/db.ts";
import { startServer } from "../support/server.ts";

const db = useTestDatabase();

/**
 * The metric names in the first column of README's Metrics table, and those of
 * them whose source column says "with replicas": labelled by replica, they have
 * series only once read replicas are configured, which this test does not.
 */
async function documentedMetrics(): Promise<{ all: string[]; withReplicas: string[] }> {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
  const section = /^### Metrics\n([\s\S]*?)^#{2,3} /m.exec(readme)![1];
  const rows = section.split("\n").filter((line) => line.startsWith("| `")).map((line) => line.split("|"));
  const names = (cells: string[]) => [...cells[1].matchAll(/`([a-z_:][a-z0-9_:]*)`/g)].map((match) => match[1]);
  return {
    all: rows.flatMap(names).sort(),
    withReplicas: rows.filter((cells) => /\bwith replicas\b/.test(cells[4] ?? "")).flatMap(names),
  };
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
  const { all: documented, withReplicas } = await documentedMetrics();
  expect(documented.length).toBeGreaterThan(10);
  const server = await startServer({ databaseUrl: db.url, args: ["start"] });
  try {
    const exported = exportedFamilies(await (await fetch(`${server.baseUrl}/metrics`)).text());
    expect(documented.filter((name) => !exported.includes(name) && !withReplicas.includes(name))).toEqual([]);
    expect(exported.filter((name) => name.startsWith("prompter_") && !documented.includes(name))).toEqual([]);
  } finally {
    await server.stop();
  }
}, 120_000);
