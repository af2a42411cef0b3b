// The README's GraphQL examples: every ```graphql block is one operation, valid
// on its own against the schema the running gateway serves (introspected), so
// copying any of them into a client works.
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
