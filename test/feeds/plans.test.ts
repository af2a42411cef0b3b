// Cost follows the change, not the table: with 30k prompts (90k versions and
// scores) and a handful of changes since the previous run, every query of an
// incremental run reads the changes through the written_in indexes and scans
// no table whole. (Timing is the benchmark's business: bench/feeds.ts.)
import { beforeAll, expect, it } from "vitest";
import { actAs, createUser, useTestDatabase } from "../support/db.ts";
import { asOwner, type Owner } from "./support.ts";

const db = useTestDatabase();
let owner: Owner;
let since: string;

beforeAll(async () => {
  owner = { role: "app_user", userId: await createUser(db.pool) };
  await db.pool.query("select app_private.generate_demo($1, 30000)", [owner.userId]);
  // Someone who deleted their prompts, ten at a time: some 24k tombstones of 300 transactions.
  const gone = await createUser(db.pool);
  await db.pool.query("select app_private.generate_demo($1, 3000)", [gone]);
  // Statistics first, as autovacuum would have them: planned against empty tables,
  // each delete's bookkeeping scans every user's rows (110 s instead of 10 s).
  await db.pool.query("analyze");
  for (let i = 0; i < 300; i++) {
    await db.pool.query("delete from app_public.prompts where user_id = $1 and id % 300 = $2", [gone, i]);
  }
  await db.pool.query("analyze");
  since = (await db.pool.query<{ s: string }>("select pg_current_snapshot()::text as s")).rows[0].s;
  await asOwner(db.pool, owner, async (client) => {
    await client.query("update app_public.judge_scores set clarity = 1 where id in (select id from app_public.judge_scores where user_id = $1 order by id limit 5)", [owner.userId]);
    await client.query("update app_public.prompt_versions set text = 'edited' where id in (select id from app_public.prompt_versions where user_id = $1 order by id desc limit 5)", [owner.userId]);
    await client.query("delete from app_public.prompts where id in (select id from app_public.prompts where user_id = $1 order by id limit 3 offset 100)", [owner.userId]);
    await client.query("select app_public.record_run($1)", [{ prompt: "new", versions: [{ agent: "syntax", text: "new one" }], best_version: 0 }]);
  });
}, 300_000); // 30k prompts and 300 deleting transactions: a minute on a busy machine

it.each(["prompts", "prompt_versions", "judge_scores", "multi_agent_log"])("an incremental %s run reads the written_in indexes, no table whole", async (kind) => {
  const plans = await actAs(db.pool, owner, async (client) => {
    await client.query("set local enable_seqscan = on");
    const { rows: parts } = await client.query<{ file_name: string; query: string }>(
      "select file_name, query from app_hidden.feed_parts($1, true, false, $2, '{}')",
      [kind, since],
    );
    const explained: string[] = [];
    for (const part of parts) {
      const { rows } = await client.query<{ "QUERY PLAN": string }>(`explain ${part.query}`);
      explained.push(rows.map((row) => row["QUERY PLAN"]).join("\n"));
    }
    return explained;
  });
  for (const plan of plans) {
    expect(plan).not.toMatch(/Seq Scan on (prompts|prompt_versions|judge_scores|best_heads|tombstones|multi_agent_log_rows)\b/);
    expect(plan).toMatch(/(Index|Bitmap Index) Scan (using|on) \w+_written_in_idx/);
  }
});
