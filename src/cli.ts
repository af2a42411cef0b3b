// `npx prompter <command>`: the operator's entry point. Each command lives in
// src/commands/<name>.ts and default-exports a function of its arguments.
import { ConfigError } from "./config.ts";
import { UsageError } from "./commands/args.ts";

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ default: (args: string[]) => Promise<void> }> }> = {
  start: { summary: "start [--no-worker]       database (embedded if no DATABASE_URL), migrations, gateway and worker", load: () => import("./commands/start.ts") },
  server: { summary: "server                    the gateway alone (GraphQL and REST), no migrations, no worker", load: () => import("./commands/server.ts") },
  worker: { summary: "worker                    run queued exports and the retention schedule (any number of workers)", load: () => import("./commands/worker.ts") },
  export: { summary: "export <kind> --username U [--format csv|jsonl|parquet] [--gzip] [--excel] [--agents a,b] [--created-after T] [--created-before T] [--out FILE] [--wait]   queue an export as U; wait for it, copy it", load: () => import("./commands/export.ts") },
  feed: { summary: "feed add <kind> --format F [--every 1h] | list | run <feed> [--wait] | pull <feed> --dir DIR  (--username U)   feeds: incremental exports", load: () => import("./commands/feed.ts") },
  migrate: { summary: "migrate                   bring the database to the current schema", load: () => import("./commands/migrate.ts") },
  user: { summary: "user add <username> [--admin] | list | promote | demote | disable | enable | remove | set-password <username>   accounts", load: () => import("./commands/user.ts") },
  token: { summary: "token <username>          print a signed token (JWT) for the user", load: () => import("./commands/token.ts") },
  demo: { summary: "demo --username U --prompts N   generate demo prompts, versions, scores and best heads", load: () => import("./commands/demo.ts") },
  "sql-user": { summary: "sql-user add <login> --as <username> [--admin] | list | remove <login>   read-only database logins", load: () => import("./commands/sql-user.ts") },
};

function usage(): string {
  return ["Usage: npx prompter <command> [options]", "", ...Object.values(COMMANDS).map((c) => `  ${c.summary}`)].join("\n");
}

const [name, ...args] = process.argv.slice(2);
const command = name ? COMMANDS[name] : undefined;
if (!command) {
  process.stderr.write(`${name && name !== "help" && name !== "--help" ? `Unknown command "${name}".\n\n` : ""}${usage()}\n`);
  process.exit(name && name !== "help" && name !== "--help" ? 2 : 0);
}
try {
  await (await command.load()).default(args);
} catch (error) {
  if (error instanceof ConfigError || error instanceof UsageError) {
    process.stderr.write(`prompter ${name}: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
