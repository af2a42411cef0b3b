import { parseCommandArgs, positiveInteger, UsageError } from "./args.ts";
import { findUser, withDatabase } from "./connect.ts";

export default async function demo(args: string[]): Promise<void> {
  const { values } = parseCommandArgs(args, { username: { type: "string" }, prompts: { type: "string" } });
  if (!values.username) throw new UsageError("usage: prompter demo --username U --prompts N");
  const prompts = positiveInteger(values.prompts, "--prompts");
  await withDatabase(async (client) => {
    const user = await findUser(client, values.username!);
    const started = performance.now();
    await client.query("select app_private.generate_demo($1, $2)", [user.id, prompts]);
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(`Generated ${prompts} prompts for ${values.username} in ${seconds.toFixed(1)} s.\n`);
  });
}
