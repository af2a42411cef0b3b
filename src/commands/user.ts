// `prompter user ...`: accounts, for operators. Every rule (names, passwords,
// what a change revokes) lives in SQL (app_private.add_user, list_users,
// set_user_admin, set_user_disabled, remove_user, reset_password); this reads
// arguments and prints.
import { parseCommandArgs, readPassword, UsageError } from "./args.ts";
import { withDatabase } from "./connect.ts";

const USAGE = `usage: prompter user add <username> [--admin]   (password from stdin or a prompt)
       prompter user list
       prompter user promote|demote|disable|enable|remove <username>
       prompter user set-password <username>   (password from stdin or a prompt; signs the user out everywhere)`;

/** One-argument actions: the SQL call and what to print. */
const CHANGES: Record<string, { sql: string; done: string }> = {
  promote: { sql: "select app_private.set_user_admin($1, true)", done: "is now an admin" },
  demote: { sql: "select app_private.set_user_admin($1, false)", done: "is no longer an admin" },
  disable: { sql: "select app_private.set_user_disabled($1, true)", done: "is disabled and signed out everywhere" },
  enable: { sql: "select app_private.set_user_disabled($1, false)", done: "is enabled" },
  remove: { sql: "select app_private.remove_user($1)", done: "and all their data are removed" },
};

export default async function user(args: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(args, { admin: { type: "boolean", default: false } });
  const [action, username, ...rest] = positionals;
  if (rest.length || (values.admin && action !== "add")) throw new UsageError(USAGE);
  if (action === "list" && !username) return list();
  if (!username) throw new UsageError(USAGE);
  if (action === "add") {
    const password = await readPassword(`Password for ${username}: `);
    return withDatabase(async (client) => {
      const { rows } = await client.query<{ id: string }>("select app_private.add_user($1, $2, $3) as id", [username, password, values.admin]);
      process.stdout.write(`Created ${values.admin ? "admin" : "user"} ${username} (id ${rows[0].id}).\n`);
    });
  }
  if (action === "set-password") {
    const password = await readPassword(`New password for ${username}: `);
    return withDatabase(async (client) => {
      await client.query("select app_private.reset_password($1, $2)", [username, password]);
      process.stdout.write(`Set the password of ${username}; every earlier token is revoked.\n`);
    });
  }
  const change = CHANGES[action ?? ""];
  if (!change) throw new UsageError(USAGE);
  await withDatabase(async (client) => {
    await client.query(change.sql, [username]);
    process.stdout.write(`${username} ${change.done}.\n`);
  });
}

async function list(): Promise<void> {
  await withDatabase(async (client) => {
    const { rows } = await client.query<{ id: string; username: string; is_admin: boolean; is_disabled: boolean; has_password: boolean; created_at: Date }>(
      "select * from app_private.list_users()");
    const lines = rows.map((u) => [
      u.id.padStart(6), u.username.padEnd(24), (u.is_admin ? "admin" : "user").padEnd(6),
      (u.is_disabled ? "disabled" : "enabled").padEnd(9), (u.has_password ? "password" : "no password").padEnd(12), u.created_at.toISOString(),
    ].join(" "));
    process.stdout.write(`${["    id username                 role   state     sign-in      created", ...lines].join("\n")}\n`);
  });
}
