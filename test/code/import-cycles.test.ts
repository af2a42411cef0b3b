// Each folder of src/ depends one way: no module imports itself back through
// others (shared types live in modules of their own, such as src/task-context.ts
// and src/server/caller.ts). Type-only imports count: they couple modules too.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

async function importGraph(): Promise<Map<string, string[]>> {
  const files = (await readdir(SRC, { recursive: true })).filter((file) => file.endsWith(".ts"));
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = await readFile(path.join(SRC, file), "utf8");
    const imports = [...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+"(\.{1,2}\/[^"]+)"/gm)]
      .map((match) => path.normalize(path.join(path.dirname(file), match[1])));
    graph.set(path.normalize(file), imports);
  }
  return graph;
}

/** Every cycle, each as the path from a module back to itself. */
function cycles(graph: Map<string, string[]>): string[] {
  const found = new Set<string>();
  const visit = (module: string, trail: string[]) => {
    for (const next of graph.get(module) ?? []) {
      const start = trail.indexOf(next);
      if (start >= 0) found.add([...trail.slice(start), next].join(" -> "));
      else if (trail.length < graph.size) visit(next, [...trail, next]);
    }
  };
  for (const module of graph.keys()) visit(module, [module]);
  return [...found];
}

it("src/ has no import cycles", async () => {
  const graph = await importGraph();
  expect(graph.size).toBeGreaterThan(30);
  expect(graph.get(path.normalize("tasks/export.ts"))).toContain(path.normalize("task-context.ts"));
  expect(cycles(graph)).toEqual([]);
});
