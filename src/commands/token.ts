// Prints a token for a user, for operators and scripts:
//   curl -H "Authorization: Bearer $(npx prompter token alice)" .../api/exports
import { loadConfig } from "../config.ts";
import { signToken } from "../server/auth.ts";
import { parseCommandArgs, UsageError } from "./args.ts";
import { findUser, withDatabase } from "./connect.ts";

export default async function token(args: string[]): Promise<void> {
  const { positionals } = parseCommandArgs(args, {});
  if (positionals.length !== 1) throw new UsageError("usage: prompter token <username>");
  const config = loadConfig();
  const claims = await withDatabase(async (client) => {
    await client.query("select set_config('prompter.jwt_ttl', $1, false)", [`${config.jwtExpiresInSeconds} seconds`]);
    return findUser(client, positionals[0]);
  });
  process.stdout.write(`${signToken({ role: claims.role, user_id: claims.id, exp: Number(claims.exp), token_generation: claims.token_generation }, config.jwtSecret)}\n`);
}
