// Structured logs: one JSON object per line (pino) on stdout, from the gateway,
// the worker and the commands that run them; pretty-printed when stdout is a terminal. Secrets never reach a line: the
// fields that could hold one are redacted by name, and connection strings are
// logged without their password.
import { hostname } from "node:os";
import pino from "pino";
import pretty from "pino-pretty";
import type { Config } from "./config.ts";

/** What the gateway, the worker and the tasks log through; a pino logger fits it, and so does a test's recorder. */
export interface Log {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

// Field names that may carry a credential, at the top level or one level down.
const SECRET_FIELDS = ["authorization", "cookie", "password", "token", "secret", "jwtSecret", "metricsToken", "databaseUrl", "connectionString"];

/** The process's logger (to stdout); the gateway and the worker log through children naming their component. */
export function createLogger(config: Pick<Config, "logLevel">, destination?: pino.DestinationStream): pino.Logger {
  const options: pino.LoggerOptions = {
    level: config.logLevel,
    base: { hostname: hostname(), pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: SECRET_FIELDS.flatMap((name) => [name, `*.${name}`]), censor: "[redacted]" },
  };
  // Written synchronously: the lines just before a crash are the ones most needed.
  // A person at a terminal reads them through pino's own pretty printer; anything else gets JSON lines.
  const readable = !destination && process.stdout.isTTY;
  return pino(options, destination ?? (readable
    ? pretty({ sync: true, translateTime: "SYS:HH:MM:ss", ignore: "hostname,pid" })
    : pino.destination({ dest: 1, sync: true })));
}

/** A connection string fit for a log line: without its password. */
export function withoutPassword(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = "redacted";
  return parsed.toString();
}

/**
 * A failure that has been logged already, with the fields that explain it, and
 * is thrown on only to be handled (a job to retry): whoever catches it logs no
 * second line about it. The message is the original's.
 */
export class LoggedError extends Error {
  constructor(error: unknown) {
    super((error as Error)?.message ?? String(error), { cause: error });
  }
}
