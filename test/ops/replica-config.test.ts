// The read replicas' settings: lists of URLs, each checked, named in the refusal.
import { expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";

const refusal = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error(`${JSON.stringify(env)} was accepted`);
};

const primary = { DATABASE_URL: "postgres://owner@primary/prompter", AUTH_DATABASE_URL: "postgres://auth@primary/prompter" };

it("reads replica lists, and refuses lists that cannot work", () => {
  expect(loadConfig(primary).replicas).toEqual({ ownerUrls: [], authUrls: [], maxWaitMs: 2000, maxLagSeconds: 30 });
  expect(loadConfig({
    ...primary,
    REPLICA_DATABASE_URL: "postgres://owner@r1/prompter, postgres://owner@r2:6432/prompter",
    REPLICA_AUTH_DATABASE_URL: "postgres://auth@r1/prompter",
    REPLICA_MAX_WAIT: "5s",
    REPLICA_MAX_LAG: "2m",
  }).replicas).toEqual({
    ownerUrls: ["postgres://owner@r1/prompter", "postgres://owner@r2:6432/prompter"],
    authUrls: ["postgres://auth@r1/prompter"],
    maxWaitMs: 5000,
    maxLagSeconds: 120,
  });
  expect(refusal({ ...primary, REPLICA_DATABASE_URL: "postgres://owner@r1/prompter,,postgres://owner@r2/prompter" }))
    .toMatch(/^REPLICA_DATABASE_URL \(URL 2\) is empty/);
  expect(refusal({ ...primary, REPLICA_DATABASE_URL: "postgres://owner@r1/prompter,mysql://r2/prompter" }))
    .toMatch(/^REPLICA_DATABASE_URL \(URL 2\) must be a postgres:\/\/ URL/);
  expect(refusal({ DATABASE_URL: primary.DATABASE_URL, REPLICA_AUTH_DATABASE_URL: "postgres://auth@r1/prompter" }))
    .toMatch(/^REPLICA_AUTH_DATABASE_URL needs AUTH_DATABASE_URL/);
  expect(refusal({ ...primary, REPLICA_DATABASE_URL: "postgres://owner@r1/prompter", REPLICA_AUTH_DATABASE_URL: "postgres://owner@r1/prompter" }))
    .toMatch(/^REPLICA_AUTH_DATABASE_URL must log in as the authenticator/);
  expect(refusal({ ...primary, REPLICA_MAX_WAIT: "0" })).toMatch(/^REPLICA_MAX_WAIT must be a duration/);
});
