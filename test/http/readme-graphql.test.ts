// The README's GraphQL examples: every ```graphql block is one operation, valid
// on its own against the schema the running gateway serves (introspected), so
// copying any of them into a client works; and run in order by a new user,
// each taking its ids from the answers before it, as its `# variables:` say.
import { afterAll, beforeAll, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { buildClientSchema, getIntrospectionQuery, Kind, parse, validate, type GraphQLSchema, type IntrospectionQuery } from "postgraphile/graphql";
import { createUser, useTestDatabase } from "../support/db.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
let schema: GraphQLSchema;

beforeAll(async () => {
  server = await startServer({ databaseUrl: db.url });
  // As a signed-in user: the schema is the same for everyone, the README's reader included.
  const introspection = await graphql(server, getIntrospectionQuery(), {}, signTestToken(await createUser(db.pool)));
  expect(introspection.errors).toBeUndefined();
  schema = buildClientSchema(introspection.data as IntrospectionQuery);
});
afterAll(() => server?.stop());

async function readmeGraphqlBlocks(): Promise<string[]> {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
  return [...readme.matchAll(/^```graphql\n([\s\S]*?)^```$/gm)].map((match) => match[1]);
}

it("finds the README's GraphQL examples", async () => {
  expect((await readmeGraphqlBlocks()).length).toBeGreaterThanOrEqual(5);
});

it("has one operation in each block, valid against the live schema", async () => {
  for (const block of await readmeGraphqlBlocks()) {
    const document = parse(block);
    const operations = document.definitions.filter((definition) => definition.kind === Kind.OPERATION_DEFINITION);
    expect(operations, block).toHaveLength(1);
    expect(validate(schema, document).map((error) => error.message), block).toEqual([]);
  }
});

/** A block's `# variables:` comment (it may go on over several comment lines, up to `# result:`), as JSON. */
function variablesOf(block: string): Record<string, unknown> {
  const comment = /^# variables:(.*(?:\n#(?! result:).*)*)/m.exec(block)?.[1];
  return comment ? JSON.parse(comment.replace(/\n#/g, "\n")) : {};
}

/** Replaces each "<Operation: path.in.its.data>" with that value of the operation's answer. */
function fromAnswers(value: unknown, answers: Map<string, Record<string, unknown>>): unknown {
  if (typeof value === "string") {
    const reference = /^<(\w+): ([\w.]+)>$/.exec(value);
    if (!reference) return value;
    const answer = answers.get(reference[1]);
    expect(answer, `${value}: no answer of ${reference[1]} before it`).toBeDefined();
    return reference[2].split(".").reduce<unknown>((data, key) => (data as Record<string, unknown>)[key], answer);
  }
  if (Array.isArray(value)) return value.map((item) => fromAnswers(item, answers));
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, fromAnswers(item, answers)]));
  return value;
}

it("runs in order as a user who owns none of the first rows, each block taking its ids from the answers before it", async () => {
  // Someone else owns the first prompt, version and score: an example with a fixed id 1 would fail for the reader.
  const owner = await createUser(db.pool);
  await db.pool.query("select app_private.generate_demo($1, 2)", [owner]);
  const reader = signTestToken(await createUser(db.pool));
  const answers = new Map<string, Record<string, unknown>>();
  for (const block of await readmeGraphqlBlocks()) {
    const operation = parse(block).definitions.find((definition) => definition.kind === Kind.OPERATION_DEFINITION)!;
    expect(operation.name?.value, `every example names its operation, so later ones can refer to it:\n${block}`).toBeDefined();
    const answer = await graphql(server, block, fromAnswers(variablesOf(block), answers) as Record<string, unknown>, reader);
    expect(answer.errors, block).toBeUndefined();
    answers.set(operation.name!.value, answer.data!);
    // A sample result in the block names the keys the answer has.
    const sample = /^# result: (.*)$/m.exec(block)?.[1];
    if (sample) {
      const result = Object.values(answer.data!)[0] as { result: Record<string, unknown> };
      expect(Object.keys(result.result).sort()).toEqual([...sample.matchAll(/"(\w+)":/g)].map((match) => match[1]).sort());
    }
  }
  expect([...answers.keys()]).toEqual(expect.arrayContaining(["AddPrompt", "AddVersion", "ScoreVersion", "PickBest"]));
  // The reader's rows, not the owner's: the version scored and picked is the one the reader added.
  const versionId = (answers.get("AddVersion") as { createPromptVersion: { promptVersion: { rowId: string } } }).createPromptVersion.promptVersion.rowId;
  const { rows } = await db.pool.query("select v.user_id::text, b.prompt_version_id::text as best from app_public.prompt_versions v join app_public.best_heads b on b.prompt_id = v.prompt_id where v.id = $1", [versionId]);
  expect(rows).toEqual([{ user_id: expect.not.stringMatching(`^${owner}$`), best: versionId }]);
});
