// A multi_agent_log feed across the upgrade that stamps multi_agent_log's rows
// (migration 000014): the first run after it carries exactly the prompts that
// a run before it would have carried (whatever of theirs was written after the
// feed's last snapshot), and the runs after it the prompts whose row changed.
import { afterAll, beforeAll, expect, it } from "vitest";
import pg from "pg";
import { createDatabase, createUser } from "../support/db.ts";
import { BEFORE_LOG_STAMPS, buildPreviousRelease } from "../support/previous-release.ts";
import { migrateDatabase } from "../../src/db/migrate.ts";
import { asOwner, type Owner } from "./support.ts";

let database: Awaited<ReturnType<typeof createDatabase>>;
let pool: pg.Pool;

beforeAll(async () => {
  database = await createDatabase();
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
  await pool.query("drop schema app_public, app_hidden, app_private, graphile_migrate, graphile_worker cascade");
  await buildPreviousRelease(database.url, BEFORE_LOG_STAMPS);
}, 120_000);

afterAll(async () => {
  await pool?.end();
  await database?.drop();
});

const snapshot = async () => (await pool.query<{ s: string }>("select pg_current_snapshot()::text as s")).rows[0].s;

/** The request ids a multi_agent_log feed run after `since` carries for the owner. */
async function carried(owner: Owner, since: string): Promise<number[]> {
  return asOwner(pool, owner, async (client) => {
    const { rows: [part] } = await client.query<{ query: string }>(
      "select query from app_hidden.feed_parts('multi_agent_log', false, false, $1, '{}') where file_name = 'multi_agent_log'", [since]);
    return (await client.query<{ request_id: string }>(part.query)).rows.map((row) => Number(row.request_id));
  });
}

/** The owner's prompts, each with its versions (oldest first) and scored version ids. */
async function promptsOf(userId: string) {
  const { rows } = await pool.query<{ id: string; versions: string[] }>(
    `select p.id, array_agg(v.id order by v.id) as versions
       from app_public.prompts p join app_public.prompt_versions v on v.prompt_id = p.id
      where p.user_id = $1 group by p.id order by p.id`, [userId]);
  return rows.map((row) => ({ id: Number(row.id), versions: row.versions.map(Number) }));
}

it("carries what changed after the feed's last snapshot across the upgrade, then only rows that changed", async () => {
  const owner: Owner = { role: "app_user", userId: await createUser(pool) };
  const other: Owner = { role: "app_user", userId: await createUser(pool) };
  await pool.query("select app_private.generate_demo($1, 12), app_private.generate_demo($2, 3)", [owner.userId, other.userId]);
  const [early, scored, explained, shortened, crowned, retitled, untouched] = await promptsOf(owner.userId);
  const [othersPrompt] = await promptsOf(other.userId);

  // Written before the feed's last run: already carried.
  await asOwner(pool, owner, (client) => client.query("update app_public.judge_scores set clarity = 0 where prompt_version_id = $1", [early.versions[0]]));
  const lastRun = await snapshot();
  await asOwner(pool, owner, async (client) => {
    await client.query("update app_public.judge_scores set clarity = (clarity + 3) % 10 where prompt_version_id = $1", [scored.versions[0]]);
    await client.query("update app_public.prompt_versions set explanation = 'why it is better' where id = $1", [explained.versions[1]]);
    await client.query("delete from app_public.prompt_versions where id = $1", [shortened.versions[2]]);
    await client.query("select app_public.set_best_head($1)", [crowned.versions[0]]);
    await client.query("update app_public.prompts set text = 'retitled' where id = $1", [retitled.id]);
  });
  await asOwner(pool, other, (client) => client.query("update app_public.judge_scores set clarity = (clarity + 3) % 10 where prompt_version_id = $1", [othersPrompt.versions[0]]));

  await migrateDatabase(database.url, { authenticatorUrl: database.authUrl });

  // Everything of the owner's written after the snapshot, as before the
  // upgrade: the explanation too, though the row shows no explanation.
  expect((await carried(owner, lastRun)).sort((a, b) => a - b)).toEqual([scored.id, explained.id, shortened.id, crowned.id, retitled.id]);
  expect(await carried(other, lastRun)).toEqual([othersPrompt.id]);

  const afterUpgrade = await snapshot();
  await asOwner(pool, owner, async (client) => {
    await client.query("update app_public.prompt_versions set explanation = 'still why' where id = $1", [explained.versions[1]]);
    await client.query("update app_public.judge_scores set clarity = (clarity + 3) % 10 where prompt_version_id = $1", [untouched.versions[1]]);
  });
  // A row that reads as it did is not sent again.
  expect(await carried(owner, afterUpgrade)).toEqual([untouched.id]);
});
