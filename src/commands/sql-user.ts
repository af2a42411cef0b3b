// `prompter sql-user add|list|remove`: read-only database logins for analysts
// and BI tools, each mapped to an app user. What a login may do, and every
// check on names, users and limits, lives in SQL (app_private.add_sql_login,
// list_sql_logins, remove_sql_login); this only reads arguments and prints.
import type pg from "pg";
import { parseCommandArgs, positiveInteger, readPassword, UsageError } from "./args.ts";
import { withDatabase } from "./connect.ts";

const USAGE = `usage: prompter sql-user add <login> --as <username> [--admin] [--connection-limit N] [--statement-timeout 1min]
       prompter sql-user list
       prompter sql-user remove <login>
add reads the password from stdin when it is piped, and otherwise generates one and prints it once.`;

export default async function sqlUser(args: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(args, {
    as: { type: "string" },
    admin: { type: "boolean", default: false },
    "connection-limit": { type: "string" },
    "statement-timeout": { type: "string" },
  });
  const [action, login, ...rest] = positionals;
  if (rest.length) throw new UsageError(USAGE);
  if (action === "add" && login && values.as) {
    const connectionLimit = values["connection-limit"] === undefined ? undefined : positiveInteger(values["connection-limit"], "--connection-limit");
    // Piped stdin is the password; a terminal (or nothing piped) gets a generated one.
    const password = process.stdin.isTTY ? "" : await readPassword("");
    return run((client, url) => add(client, url, { login, username: values.as!, password, admin: values.admin, connectionLimit, statementTimeout: values["statement-timeout"] }));
  }
  if (action === "list" && !login) return run(list);
  if (action === "remove" && login) return run((client) => remove(client, login));
  throw new UsageError(USAGE);
}

async function run(work: (client: pg.Client, databaseUrl: string) => Promise<void>): Promise<void> {
  await withDatabase((client, database) => work(client, database.url));
}

async function add(client: pg.Client, databaseUrl: string, options: {
  login: string; username: string; password: string; admin: boolean; connectionLimit?: number; statementTimeout?: string;
}): Promise<void> {
  // Options left out take the SQL function's defaults.
  const named: [string, unknown][] = [
    ["login", options.login], ["username", options.username], ["password", options.password || null], ["is_admin", options.admin],
  ];
  if (options.connectionLimit !== undefined) named.push(["connection_limit", options.connectionLimit]);
  if (options.statementTimeout !== undefined) named.push(["statement_timeout", options.statementTimeout]);
  const { rows } = await client.query<{ mapped_user_id: string; mapped_username: string; generated_password: string | null }>(
    `select * from app_private.add_sql_login(${named.map(([name], i) => `${name} => $${i + 1}`).join(", ")})`,
    named.map(([, value]) => value));
  const [created] = rows;
  const [login] = await listed(client, options.login);
  const where = new URL(databaseUrl);
  const address = `${where.hostname || "localhost"}:${where.port || "5432"}${where.pathname}`;
  const lines = [
    `Created read-only SQL login "${options.login}" for user ${created.mapped_username} (id ${created.mapped_user_id}): ` +
      (options.admin ? "it reads everyone's data." : "it reads that user's rows only."),
    ...(created.generated_password ? [`Password (shown only this once): ${created.generated_password}`] : []),
    `Connection string: postgresql://${options.login}:<password>@${address}   (percent-encode special characters)`,
    `psql:              psql "postgresql://${options.login}@${address}"`,
    `Limits: ${login.connection_limit} connections; statement_timeout ${login.statement_timeout}, idle in a transaction ${login.idle_in_transaction_timeout}, transaction ${login.transaction_timeout} (enforced by the worker).`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

interface ListedLogin {
  login: string;
  username: string | null;
  is_admin: boolean;
  connection_limit: number | null;
  statement_timeout: string | null;
  idle_in_transaction_timeout: string | null;
  transaction_timeout: string | null;
  settings_changed: boolean;
  open_sessions: string;
  created_at: Date | null;
}

async function listed(client: pg.Client, login?: string): Promise<ListedLogin[]> {
  const { rows } = await client.query<ListedLogin>(
    "select * from app_private.list_sql_logins() where $1::name is null or login = $1", [login ?? null]);
  return rows;
}

async function list(client: pg.Client): Promise<void> {
  const logins = await listed(client);
  if (!logins.length) {
    process.stdout.write("No SQL logins. Add one with: npx prompter sql-user add <login> --as <username>\n");
    return;
  }
  const table = [
    ["login", "user", "reads", "connections", "statement_timeout", "idle_in_transaction", "transaction", "own settings", "open sessions", "created"],
    ...logins.map((l) => [
      l.login,
      l.username ?? "(deleted user: remove this login)",
      l.is_admin ? "everyone's data" : "own rows",
      String(l.connection_limit ?? ""),
      l.statement_timeout ?? "",
      l.idle_in_transaction_timeout ?? "",
      l.transaction_timeout ?? "",
      // The limits above are enforced all the same; a change still says someone tried.
      l.settings_changed ? "CHANGED by the login" : "as configured",
      l.open_sessions,
      l.created_at?.toISOString() ?? "",
    ]),
  ];
  const widths = table[0].map((_, column) => Math.max(...table.map((row) => row[column].length)));
  process.stdout.write(table.map((row) => row.map((cell, column) => cell.padEnd(widths[column])).join("  ").trimEnd()).join("\n") + "\n");
}

async function remove(client: pg.Client, login: string): Promise<void> {
  const { rows } = await client.query<{ ended_sessions: number }>("call app_private.remove_sql_login($1, null)", [login]);
  process.stdout.write(`Removed SQL login "${login}"; ended ${rows[0].ended_sessions} open session(s).\n`);
}
