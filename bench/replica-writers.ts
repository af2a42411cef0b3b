// The replicas section's writers, in a process of their own (pinned beside the
// primary): WRITERS connections calling record_run as one user for a number of
// seconds; reports recordRun calls per second to the parent.
import pg from "pg";

const [url, userId, seconds, writers] = process.argv.slice(2);
const deadline = performance.now() + Number(seconds) * 1000;
let runs = 0;

async function writer(index: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (let i = 0; performance.now() < deadline; i++) {
      await client.query("begin");
      await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [userId]);
      await client.query("select app_public.record_run($1)", [JSON.stringify({
        prompt: `replica bench prompt ${index}-${i}`,
        versions: ["syntax", "structure", "domain"].map((agent) => ({
          agent, text: `${agent} version`, scores: { clarity: 7, specificity: 8, actionability: 6, structure: 9, context_use: 7 } })),
        best_version: 2,
      })]);
      await client.query("commit");
      runs++;
    }
  } finally {
    await client.end();
  }
}

const started = performance.now();
await Promise.all(Array.from({ length: Number(writers) }, (_, index) => writer(index)));
process.send!(runs / ((performance.now() - started) / 1000));
