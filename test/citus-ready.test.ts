// Sharding by user_id (Citus) needs every primary key and unique constraint of
// a tenant table (one with a user_id column) to include user_id, and every
// foreign key between tenant tables to carry user_id on both sides; keys to
// tables without user_id (agents, export kinds: Citus reference tables) may
// not. The keys that break the rule today are the README's "what must change"
// list ("Past one primary: sharding with Citus"): a new one fails this test.
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import type pg from "pg";
import { useTestDatabase } from "./support/db.ts";

const db = useTestDatabase();

/** Kept for the GraphQL API's single-column keys (rowId, nodeId) and the export's merge on prompt ids; the README says what each becomes. */
const KNOWN_BEFORE_CITUS = [
  "app_hidden.multi_agent_log_rows.multi_agent_log_rows_pkey",
  "app_private.sql_logins.sql_logins_pkey",
  "app_public.best_heads.best_heads_pkey",
  "app_public.exports.exports_pkey",
  "app_public.feed_runs.feed_runs_feed_id_fkey",
  "app_public.feed_runs.feed_runs_pkey",
  "app_public.feeds.feeds_pkey",
  "app_public.judge_scores.judge_scores_pkey",
  "app_public.judge_scores.judge_scores_prompt_version_id_key",
  "app_public.prompt_versions.prompt_versions_pkey",
  "app_public.prompts.prompts_pkey",
];

/** Keys of tenant tables that Citus could not distribute by user_id. */
async function keysWithoutUserId(client: pg.ClientBase): Promise<string[]> {
  const { rows } = await client.query<{ key: string }>(`
    with tenant as (
      select c.oid from pg_class c
      where c.relkind in ('r', 'p')
        and c.relnamespace::regnamespace::text in ('app_public', 'app_private', 'app_hidden')
        and exists (select from pg_attribute a where a.attrelid = c.oid and a.attname = 'user_id' and not a.attisdropped)
    ), user_id_of as (
      select a.attrelid, a.attnum from pg_attribute a join tenant t on t.oid = a.attrelid where a.attname = 'user_id'
    )
    select con.conrelid::regclass::text || '.' || con.conname as key
    from pg_constraint con join tenant t on t.oid = con.conrelid
    where (con.contype in ('p', 'u')
           and not exists (select from user_id_of u where u.attrelid = con.conrelid and u.attnum = any (con.conkey)))
       or (con.contype = 'f' and con.confrelid in (select oid from tenant)
           and not (exists (select from user_id_of u where u.attrelid = con.conrelid and u.attnum = any (con.conkey))
                    and exists (select from user_id_of u where u.attrelid = con.confrelid and u.attnum = any (con.confkey))))
    union all
    select i.indrelid::regclass::text || '.' || i.indexrelid::regclass::text
    from pg_index i join tenant t on t.oid = i.indrelid
    where i.indisunique
      and not exists (select from pg_constraint con where con.conindid = i.indexrelid)
      and not exists (select from user_id_of u where u.attrelid = i.indrelid and u.attnum = any (i.indkey))
    order by 1`);
  return rows.map((row) => row.key.replace(/\.app_\w+\./, "."));
}

describe("the schema stays ready to shard by user_id", () => {
  it("no tenant table has a key without user_id beyond the README's list", async () => {
    const client = await db.pool.connect();
    try {
      expect(await keysWithoutUserId(client)).toEqual(KNOWN_BEFORE_CITUS);
    } finally {
      client.release();
    }
  });

  it("a new tenant key without user_id is caught: primary key, unique constraint, unique index, foreign key", async () => {
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      await client.query(`create table app_public.citus_probe (id bigint, user_id bigint, prompt_id bigint, note text)`);
      await client.query(`alter table app_public.citus_probe add constraint citus_probe_pkey primary key (id)`);
      await client.query(`alter table app_public.citus_probe add constraint citus_probe_note_key unique (note)`);
      await client.query(`create unique index citus_probe_lower_note on app_public.citus_probe (lower(note), prompt_id)`);
      await client.query(`alter table app_public.citus_probe add constraint citus_probe_prompt_fkey
        foreign key (prompt_id) references app_public.prompts (id)`);
      // These follow the rule and must not be reported.
      await client.query(`alter table app_public.citus_probe add constraint citus_probe_user_note_key unique (user_id, note)`);
      await client.query(`alter table app_public.citus_probe add constraint citus_probe_user_prompt_fkey
        foreign key (user_id, prompt_id) references app_public.prompts (user_id, id)`);
      await client.query(`alter table app_public.citus_probe add constraint citus_probe_agent_fkey
        foreign key (note) references app_public.agents (name)`);
      const found = await keysWithoutUserId(client);
      expect(found.filter((key) => key.startsWith("app_public.citus_probe"))).toEqual([
        "app_public.citus_probe.citus_probe_lower_note",
        "app_public.citus_probe.citus_probe_note_key",
        "app_public.citus_probe.citus_probe_pkey",
        "app_public.citus_probe.citus_probe_prompt_fkey",
      ]);
    } finally {
      await client.query("rollback");
      client.release();
    }
  });

  it("the README names every key that must change before distribution", async () => {
    const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("### Past one primary: sharding with Citus"));
    for (const key of KNOWN_BEFORE_CITUS) expect(section).toContain(`\`${key.split(".").pop()}\``);
  });
});
