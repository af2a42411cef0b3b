// The one place that reads the environment. Every value is checked here, so a
// bad setting stops the process at start with a message that names it.
import path from "node:path";

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, not "${raw}".`);
  }
  return value;
}

function connectionUrl(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be a postgres:// URL.`);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new ConfigError(`${name} must be a postgres:// URL, not ${url.protocol}//...`);
  }
  return raw;
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** "24h", "30m", "7d" or a number of seconds. */
function durationSeconds(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const match = /^(\d+)\s*([smhd]?)$/.exec(raw.trim());
  if (!match || Number(match[1]) === 0) {
    throw new ConfigError(`${name} must be a duration such as 3600, 30m, 24h or 7d, not "${raw}".`);
  }
  return Number(match[1]) * DURATION_UNITS[match[2] || "s"];
}

const DEVELOPMENT_SECRET = "prompter-development-secret-do-not-use-in-production";

export function loadConfig(env: Env = process.env) {
  const production = env.NODE_ENV === "production";
  const jwtSecret = env.JWT_SECRET || (production ? "" : DEVELOPMENT_SECRET);
  if (production && jwtSecret.length < 32) {
    throw new ConfigError("JWT_SECRET must be set to at least 32 random characters in production.");
  }
  const jwtPublicKey = env.JWT_PUBLIC_KEY?.replace(/\\n/g, "\n") || undefined;
  if (jwtPublicKey && !jwtPublicKey.includes("BEGIN PUBLIC KEY")) {
    throw new ConfigError("JWT_PUBLIC_KEY must be a PEM public key (-----BEGIN PUBLIC KEY-----).");
  }
  return {
    production,
    /** Unset: prompter starts an embedded PostgreSQL in .data/pg. */
    databaseUrl: connectionUrl(env, "DATABASE_URL"),
    embeddedPgPort: integer(env, "EMBEDDED_PG_PORT", 54329, 1, 65535),
    embeddedPgDir: path.resolve(env.EMBEDDED_PG_DIR || ".data/pg"),
    port: integer(env, "PORT", 8001, 0, 65535),
    host: env.HOST || "0.0.0.0",
    jwtSecret,
    jwtPublicKey,
    jwtExpiresInSeconds: durationSeconds(env, "JWT_EXPIRES_IN", 24 * 3600),
    exportDir: path.resolve(env.EXPORT_DIR || "storage/exports"),
    exportRetentionDays: integer(env, "EXPORT_RETENTION_DAYS", 30, 1, 36500),
    exportWaitSeconds: integer(env, "EXPORT_WAIT_SECONDS", 60, 1, 3600),
    workerConcurrency: integer(env, "WORKER_CONCURRENCY", 2, 1, 64),
    poolMax: integer(env, "PG_POOL_MAX", 10, 1, 1000),
    metricsToken: env.METRICS_TOKEN || undefined,
    alertWebhookUrl: env.ALERT_WEBHOOK_URL || undefined,
    logLevel: env.LOG_LEVEL || "info",
    /** Grafast's mode: "development" adds planning checks that cost speed. */
    graphileEnv: env.GRAPHILE_ENV || (env.NODE_ENV === "development" || env.NODE_ENV === "test" ? "development" : "production"),
  };
}

export type Config = ReturnType<typeof loadConfig>;
