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
    await client.query("begin");
    const { rows } = await client.query<{ user_id: string }>(
      "select (app_public.register($1, $2)).user_id", [username, password]);
    await client.query("update app_public.users set is_admin = $2 where id = $1", [rows[0].user_id, values.admin]);
    await client.query("commit");
    process.stdout.write(`Created ${values.admin ? "admin" : "user"} ${username} (id ${rows[0].user_id}).\n`);
  }).catch((error) => {
    // The schema's own errors (weak password, taken username) are messages for the operator.
    if (typeof error?.code === "string" && error.code.startsWith("PR")) throw new UsageError(error.message);
    throw error;
  });
}
