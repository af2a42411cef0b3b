// Every environment variable prompter, its tests' harness or its benchmark
// reads is named in README.md, read at test time on both sides.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));

async function sources(): Promise<string[]> {
  const files: string[] = [];
  for (const directory of ["src", "bench", "bin", "test/support"]) {
    const entries = await readdir(path.join(root, directory), { recursive: true, withFileTypes: true });
    files.push(...entries.filter((entry) => entry.isFile() && /\.(ts|js)$/.test(entry.name)).map((entry) => path.join(entry.parentPath, entry.name)));
  }
  return files;
}

it("README names every environment variable read by src/, bench/, bin/ and the test harness", async () => {
  const read = new Set<string>();
  for (const file of await sources()) {
    const text = await readFile(file, "utf8");
    // process.env.NAME, and config.ts's env.NAME, env["NAME"] and helpers' (env, "NAME")
    for (const match of text.matchAll(/\benv(?:\.([A-Z][A-Z0-9_]+)|\["([A-Z][A-Z0-9_]+)"\]|, "([A-Z][A-Z0-9_]+)")/g)) read.add(match[1] ?? match[2] ?? match[3]);
  }
  expect(read.size).toBeGreaterThan(40);
  const readme = await readFile(path.join(root, "README.md"), "utf8");
  expect([...read].filter((name) => !new RegExp("`" + name + "[`=]").test(readme)).sort()).toEqual([]);
});
