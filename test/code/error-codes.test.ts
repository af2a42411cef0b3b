// Every error code a client can get is in README's error-code tables, and
// every code there is one the code raises. Both sides are read at test time:
// the SQLSTATEs raised in sql/ and migrations/, the codes the gateway and the
// worker's servers answer with in src/, and README.md's "Error codes" section.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));

async function filesUnder(directory: string, extension: string): Promise<string[]> {
  const entries = await readdir(path.join(root, directory), { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile() && entry.name.endsWith(extension)).map((entry) => path.join(entry.parentPath, entry.name));
}

const read = (files: string[]) => Promise.all(files.map((file) => readFile(file, "utf8")));
const CODE = /"([A-Z][A-Z0-9_]{2,})"/g;
// PostgreSQL's own classes: digits first, or plpgsql's P0, XX, HV (FDW) and F0 (configuration).
const standardSqlstate = (code: string) => /^([0-9]|P0|XX|HV|F0)/.test(code);

/**
 * The SQLSTATEs of the project raised in SQL (errcode = 'XXXXX'), or recorded
 * as a code (some_code := 'XXXXX', say an export's refusal), not PostgreSQL's own.
 */
async function sqlCodes(): Promise<Set<string>> {
  const texts = await read([...await filesUnder("sql", ".sql"), ...await filesUnder("migrations", ".sql")]);
  return new Set(texts.flatMap((text) => [...text.matchAll(/(?:errcode\s*=|code\s*:=)\s*'([A-Z0-9]{5})'/g)].map((match) => match[1])).filter((code) => !standardSqlstate(code)));
}

/**
 * The codes the processes answer with: new HttpError(status, "CODE"), the
 * GraphQL limits' limitError("CODE") and armored("CODE"), a [status, "CODE", ...]
 * tuple, and any `code: ...` whose expression names codes. The web UI's own
 * (src/ui) never reach a client of the API.
 */
async function gatewayCodes(): Promise<Set<string>> {
  // Relative to the project: its own folder may be called ui too.
  const files = (await filesUnder("src", ".ts")).filter((file) => !path.relative(root, file).startsWith(`src${path.sep}ui${path.sep}`));
  const codes = new Set<string>();
  for (const text of await read(files)) {
    for (const match of text.matchAll(/\b(?:HttpError|limitError|armored)\(\s*(?:[^,()"]+,\s*)?"([A-Z][A-Z0-9_]{2,})"/g)) codes.add(match[1]);
    for (const match of text.matchAll(/\[\s*\d{3},\s*"([A-Z][A-Z0-9_]{2,})"/g)) codes.add(match[1]);
    for (const match of text.matchAll(/\bcode:\s*([^,}\n]+)/g)) for (const [, code] of match[1].matchAll(CODE)) codes.add(code);
  }
  return codes;
}

/** The codes in the first column of the tables of README's "Error codes" section. */
async function documentedCodes(): Promise<Set<string>> {
  const readme = await readFile(path.join(root, "README.md"), "utf8");
  const section = /^### Error codes\n([\s\S]*?)^#{2,3} /m.exec(readme)![1];
  const firstCells = section.split("\n").filter((line) => line.startsWith("| `")).map((line) => line.split("|")[1]);
  return new Set(firstCells.flatMap((cell) => [...cell.matchAll(/`([^`]+)`/g)].map((match) => match[1])));
}

it("README's error-code tables list every code the SQL and the gateway raise", async () => {
  const documented = await documentedCodes();
  const raised = [...await sqlCodes(), ...await gatewayCodes()];
  expect(raised.length).toBeGreaterThan(30);
  expect([...new Set(raised.filter((code) => !documented.has(code)))].sort()).toEqual([]);
});

it("README's error-code tables list no code that nothing raises", async () => {
  const raised = new Set([...await sqlCodes(), ...await gatewayCodes()]);
  // PostgreSQL's own SQLSTATEs (42501) and classes (23xxx) are passed on, not raised here.
  const stale = [...await documentedCodes()].filter((code) => !standardSqlstate(code) && !raised.has(code));
  expect(stale.sort()).toEqual([]);
});
