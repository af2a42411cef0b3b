import { parseCommandArgs, readPassword, UsageError } from "./args.ts";
import { withDatabase } from "./connect.ts";

export default async function user(args: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(args, { admin: { type: "boolean", default: false } });
  const [action, username] = positionals;
  if (action !== "add" || !username || positionals.length > 2) {
    throw new UsageError("usage: prompter user add <username> [--admin]   (password from stdin or a prompt)");
  }
  const password = await readPassword(`Password for ${username}: `);
  await withDatabase(async (client) => {
    const { rows } = await client.query<{ id: string }>(
      "select app_private.add_user($1, $2, $3) as id", [username, password, values.admin]);
    process.stdout.write(`Created ${values.admin ? "admin" : "user"} ${username} (id ${rows[0].id}).\n`);
  });
}
