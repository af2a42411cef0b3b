import { parseCommandArgs, positiveInteger, UsageError } from "./args.ts";
import { withDatabase } from "./connect.ts";

export default async function demo(args: string[]): Promise<void> {
  const { values } = parseCommandArgs(args, { username: { type: "string" }, prompts: { type: "string" } });
  if (!values.username) throw new UsageError("usage: prompter demo --username U --prompts N");
  const prompts = positiveInteger(values.prompts, "--prompts");
  await withDatabase(async (client) => {
    const { rows } = await client.query<{ id: string }>(
      "select id from app_public.users where lower(username) = lower($1)", [values.username]);
    if (!rows[0]) throw new UsageError(`No user "${values.username}"; create one with: npx prompter user add ${values.username}`);
    const started = performance.now();
    await client.query("select app_private.generate_demo($1, $2)", [rows[0].id, prompts]);
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(`Generated ${prompts} prompts for ${values.username} in ${seconds.toFixed(1)} s.\n`);
  });
}
