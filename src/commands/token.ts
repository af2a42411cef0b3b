// Prints a token for a user, for operators and scripts:
//   curl -H "Authorization: Bearer $(npx prompter token alice)" .../api/exports
import { loadConfig } from "../config.ts";
import { signToken } from "../server/auth.ts";
import { parseCommandArgs, UsageError } from "./args.ts";
import { withDatabase } from "./connect.ts";

export default async function token(args: string[]): Promise<void> {
  const { positionals } = parseCommandArgs(args, {});
  if (positionals.length !== 1) throw new UsageError("usage: prompter token <username>");
  const config = loadConfig();
  const claims = await withDatabase(async (client) => {
    await client.query("select set_config('prompter.jwt_ttl', $1, false)", [`${config.jwtExpiresInSeconds} seconds`]);
    const { rows } = await client.query<{ role: string; user_id: string; exp: string }>(
      "select (app_private.jwt_for(u)).* from app_public.users u where lower(u.username) = lower($1)", [positionals[0]]);
    return rows[0];
  });
  if (!claims) throw new UsageError(`No user "${positionals[0]}"; create one with: npx prompter user add ${positionals[0]}`);
  process.stdout.write(`${signToken({ role: claims.role, user_id: claims.user_id, exp: Number(claims.exp) }, config.jwtSecret)}\n`);
}
