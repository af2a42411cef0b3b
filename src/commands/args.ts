import { parseArgs, type ParseArgsConfig } from "node:util";

/** A mistake in how a command was called: printed without a stack trace. */
export class UsageError extends Error {}

export function parseCommandArgs<T extends NonNullable<ParseArgsConfig["options"]>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export function positiveInteger(value: string | undefined, name: string): number {
  const n = Number(value);
  if (value === undefined || !Number.isInteger(n) || n < 0) throw new UsageError(`${name} must be a whole number.`);
  return n;
}

/** Reads a password from stdin when piped, or asks for it on a terminal without echoing it. */
export async function readPassword(prompt: string): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
  }
  process.stderr.write(prompt);
  process.stdin.setRawMode(true);
  let password = "";
  try {
    for await (const chunk of process.stdin) {
      for (const char of (chunk as Buffer).toString("utf8")) {
        if (char === "\r" || char === "\n") return password;
        if (char === "\u0003") throw new UsageError("cancelled");
        if (char === "\u007f") password = password.slice(0, -1);
        else password += char;
      }
    }
    return password;
  } finally {
    process.stdin.setRawMode(false);
    process.stdin.pause();
    process.stderr.write("\n");
  }
}

/** The filter flags of `feed add` and `export`. */
export const FILTER_FLAGS = {
  agents: { type: "string" },
  "created-after": { type: "string" },
  "created-before": { type: "string" },
} as const;

/** The filters the flags ask for, as SQL takes them (it checks them). */
export function filtersOf(values: { agents?: string; "created-after"?: string; "created-before"?: string }): Record<string, unknown> {
  return {
    ...(values.agents !== undefined ? { agents: values.agents.split(",") } : {}),
    ...(values["created-after"] !== undefined ? { created_after: values["created-after"] } : {}),
    ...(values["created-before"] !== undefined ? { created_before: values["created-before"] } : {}),
  };
}
