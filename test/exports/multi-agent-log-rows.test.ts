// multi_agent_log reads each prompt's row of app_hidden.multi_agent_log_rows,
// which the writing transactions keep: after every kind of write, by single
// statements (as GraphQL makes them), by recordRun, in bulk and by two writers
// of one prompt at once, the export holds what ./oracle.ts recomputes from the
// tables. And the export's plan reads two tables, each once, nothing else.
import { beforeAll, describe, expect, it } from "vitest";
import type pg from "pg";
import { to as copyTo } from "pg-copy-streams";
import { createUser, useTestDatabase } from "../support/db.ts";
import { expectedExport } from "./oracle.ts";
import { parseCsv, type SignedIn } from "./support.ts";

const db = useTestDatabase();
let alice: SignedIn;
let bob: SignedIn;
let admin: SignedIn;

beforeAll(async () => {
  alice = { role: "app_user", userId: await createUser(db.pool) };
  bob = { role: "app_user", userId: await createUser(db.pool) };
  admin = { role: "app_admin", userId: await createUser(db.pool, { admin: true }) };
});

/** A connection of its own acting as the user, in READ COMMITTED as the gateway's are; the caller commits. */
async function sessionOf(actor: SignedIn): Promise<pg.PoolClient> {
  const client = await db.pool.connect();
  await client.query("begin");
  await client.query("select set_config('role', $1, true), set_config('jwt.claims.user_id', $2, true)", [actor.role, actor.userId]);
  return client;
}

/** Runs one statement as the user and commits; returns the first column of the first row. */
async function as(actor: SignedIn, text: string, values: unknown[] = []): Promise<string> {
  const client = await sessionOf(actor);
  try {
    const { rows } = await client.query(text, values);
    await client.query("commit");
    return rows[0] && Object.values(rows[0])[0] != null ? String(Object.values(rows[0])[0]) : "";
  } finally {
    await client.query("rollback").catch(() => {});
    client.release();
  }
}

/** multi_agent_log.csv as the worker copies it for the actor, parsed. */
async function exported(actor: SignedIn): Promise<string[][]> {
  const client = await sessionOf(actor);
  try {
    const { rows } = await client.query<{ query: string }>("select query from app_hidden.export_parts('multi_agent_log')");
    const chunks: Buffer[] = [];
    await new Promise((resolve, reject) => {
      const copy = client.query(copyTo(`COPY (${rows[0].query}) TO STDOUT WITH (FORMAT csv, HEADER)`));
      copy.on("data", (chunk: Buffer) => chunks.push(chunk));
      copy.on("end", resolve);
      copy.on("error", reject);
    });
    return parseCsv(Buffer.concat(chunks));
  } finally {
    await client.query("rollback");
    client.release();
  }
}

async function expectExact(step: string) {
  for (const actor of [alice, bob, admin]) {
    const expected = (await expectedExport(db.pool, actor, "multi_agent_log")).get("multi_agent_log.csv");
    expect(await exported(actor), `${step}, as ${actor.role} ${actor.userId}`).toEqual(expected);
  }
}

const scoreSql = (value: number) =>
  `insert into app_public.judge_scores (prompt_version_id, clarity, specificity, actionability, structure, context_use)
   values ($1, ${value}, ${value}, ${value}, ${value}, ${value}) returning id`;

describe("multi_agent_log rows", () => {
  it("stay exact through every kind of write", async () => {
    const prompt = await as(alice, "insert into app_public.prompts (text) values ('a prompt') returning id");
    await expectExact("a prompt without versions");
    const syntax = await as(alice, "insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'syntax one', 'syntax') returning id", [prompt]);
    const domain = await as(alice, "insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'domain one', 'domain') returning id", [prompt]);
    await expectExact("unscored versions");
    await as(alice, scoreSql(4), [syntax]);
    await expectExact("a version scored");
    const domainScore = await as(alice, scoreSql(6), [domain]);
    await as(alice, "select app_public.set_best_head($1)", [domain]);
    await expectExact("scored, with a best head");
    const newerSyntax = await as(alice, "insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'syntax two', 'syntax') returning id", [prompt]);
    await expectExact("a newer, unscored syntax version");
    await as(alice, scoreSql(9), [newerSyntax]);
    await expectExact("the newer syntax version scored");
    await as(alice, "update app_public.judge_scores set clarity = 1 where id = $1", [domainScore]);
    await expectExact("a score added and one changed");
    await as(alice, "update app_public.prompt_versions set text = 'domain, edited' where id = $1", [domain]);
    await expectExact("the best head's text edited");
    await as(alice, "update app_public.prompt_versions set source = 'structure' where id = $1", [domain]);
    await expectExact("the best head's version moved to another agent");
    await as(alice, "select app_public.set_best_head($1)", [newerSyntax]);
    await expectExact("another best head");
    await as(alice, "delete from app_public.prompt_versions where id = $1", [newerSyntax]);
    await expectExact("the best head's version, the newest syntax one, deleted");
    await as(alice, "delete from app_public.judge_scores where prompt_version_id = $1", [syntax]);
    await expectExact("a score deleted");
    await as(bob, "insert into app_public.prompts (text) values ('bob''s') returning id");
    await as(admin, "insert into app_public.agents (name) values ('zeta')");
    await as(alice, `select app_public.record_run(jsonb_build_object('prompt_id', $1::bigint, 'best_version', 0, 'versions', jsonb_build_array(
      jsonb_build_object('agent', 'zeta', 'text', 'zeta one', 'scores', jsonb_build_object('clarity', 1, 'specificity', 2, 'actionability', 3, 'structure', 4, 'context_use', 5)),
      jsonb_build_object('agent', 'syntax', 'text', 'syntax three'))))`, [prompt]);
    await expectExact("recordRun on an existing prompt, for an agent registered later");
    const session = await sessionOf(alice);
    try {
      const { rows } = await session.query(`select app_public.record_run(jsonb_build_object('prompt_id', $1::bigint, 'versions', jsonb_build_array(
        jsonb_build_object('agent', 'zeta', 'text', 'zeta two'))))->'version_ids'->>0 as id`, [prompt]);
      await session.query(scoreSql(7), [rows[0].id]);
      await session.query("commit");
    } finally {
      session.release();
    }
    await expectExact("a score written after recordRun, in its transaction");
    await as(alice, `select app_public.record_run('{"prompt": "a run''s prompt", "best_version": 1, "versions": [
      {"agent": "domain", "text": "d", "scores": {"clarity": 1, "specificity": 1, "actionability": 1, "structure": 1, "context_use": 1.5}},
      {"agent": "domain", "text": "d, later", "scores": {"clarity": 2, "specificity": 2, "actionability": 2, "structure": 2, "context_use": 2}}]}')`);
    await expectExact("recordRun with a new prompt");
    await as(alice, `select app_public.record_run('{"prompt": "an unjudged run", "versions": [
      {"agent": "syntax", "text": "s", "scores": {"clarity": 3, "specificity": 3, "actionability": 3, "structure": 3, "context_use": 3}},
      {"agent": "syntax", "text": "s, later"}, {"agent": "domain", "text": "d", "scores": null}]}')`);
    await expectExact("recordRun with a new prompt, no best version, each agent's newest version unscored");
    await db.pool.query("select app_private.generate_demo($1, 120, 50)", [bob.userId]);
    await expectExact("bulk demo data");
    await as(alice, "delete from app_public.best_heads where prompt_id = $1", [prompt]);
    await as(alice, "delete from app_public.prompts where id = $1", [prompt]);
    await expectExact("a best head and then its prompt deleted");
  });

  it("hold both of two writers of one prompt that commit one after the other", async () => {
    const prompt = await as(alice, "insert into app_public.prompts (text) values ('written by two') returning id");
    const first = await sessionOf(alice);
    const second = await sessionOf(alice);
    try {
      const firstVersion = await first.query("insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'first', 'syntax') returning id", [prompt]);
      await first.query(scoreSql(4), [firstVersion.rows[0].id]);
      const secondPid = (await second.query("select pg_backend_pid() as pid")).rows[0].pid;
      const secondWrite = second.query("insert into app_public.prompt_versions (prompt_id, text, source) values ($1, 'second', 'domain')", [prompt]);
      // The second writer waits for the first's lock on the prompt before it computes the row.
      for (let waited = 0; ; waited += 20) {
        const { rows } = await db.pool.query("select wait_event_type from pg_stat_activity where pid = $1", [secondPid]);
        if (rows[0]?.wait_event_type === "Lock") break;
        if (waited > 10_000) throw new Error("the second writer never waited for the first");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await first.query("commit");
      await secondWrite;
      await second.query("commit");
    } finally {
      for (const client of [first, second]) {
        await client.query("rollback").catch(() => {});
        client.release();
      }
    }
    // The first writer's score is in: the second computed the row after the first committed.
    expect((await exported(alice)).find((cells) => cells[0] === prompt)?.slice(5, 8)).toEqual(["20", "", ""]);
    await expectExact("two writers of one prompt");
  });

  it("are read with the prompts, each table once: no version, no score, no lookup per prompt", async () => {
    const carol: SignedIn = { role: "app_user", userId: await createUser(db.pool) };
    // Big enough that the planner weighs a lookup per prompt against a hash
    // join (here) or a merge of the primary keys (at 100k prompts).
    await db.pool.query("select app_private.generate_demo($1, 10000)", [carol.userId]);
    await db.pool.query("analyze app_public.prompts, app_public.prompt_versions, app_public.judge_scores, app_public.best_heads, app_hidden.multi_agent_log_rows");
    const client = await sessionOf(carol);
    try {
      const { rows } = await client.query<{ query: string }>("select query from app_hidden.export_parts('multi_agent_log')");
      const { rows: plan } = await client.query(`explain (format json) ${rows[0].query}`);
      const nodes: { "Node Type": string; "Relation Name"?: string }[] = [];
      const walk = (node: any) => {
        nodes.push(node);
        for (const child of node.Plans ?? []) walk(child);
      };
      walk(plan[0]["QUERY PLAN"][0].Plan);
      expect(nodes.map((node) => node["Relation Name"]).filter(Boolean).sort()).toEqual(["multi_agent_log_rows", "prompts"]);
      expect(nodes.map((node) => node["Node Type"])).not.toContain("Nested Loop");
    } finally {
      await client.query("rollback");
      client.release();
    }
  }, 120_000);
});
