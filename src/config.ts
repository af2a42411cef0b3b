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

function webhookUrl(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const protocol = URL.canParse(raw) ? new URL(raw).protocol : "";
  if (protocol !== "http:" && protocol !== "https:") throw new ConfigError(`${name} must be an http:// or https:// URL.`);
  return raw;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

function logLevel(env: Env): string {
  const level = env.LOG_LEVEL || "info";
  if (!LOG_LEVELS.includes(level)) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, not "${level}".`);
  return level;
}

function booleanSetting(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (raw !== "true" && raw !== "false") throw new ConfigError(`${name} must be true or false, not "${raw}".`);
  return raw === "true";
}

/** Where export files go: the worker's EXPORT_DIR, or a bucket every worker and gateway shares. */
function exportStorage(env: Env) {
  const kind = env.EXPORT_STORAGE || "local";
  if (kind === "local") return { kind: "local" as const };
  if (kind !== "s3") throw new ConfigError(`EXPORT_STORAGE must be local or s3, not "${kind}".`);
  const bucket = env.S3_BUCKET ?? "";
  // The rules every S3-compatible service accepts; a typo here would otherwise surface as the first export's failure.
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new ConfigError(`EXPORT_STORAGE=s3 needs S3_BUCKET, a bucket name of 3 to 63 lowercase letters, digits, dots and hyphens${bucket ? `, not "${bucket}"` : ""}.`);
  }
  const rawPrefix = env.S3_PREFIX ?? "";
  if (rawPrefix.startsWith("/") || rawPrefix.includes("//")) {
    throw new ConfigError(`S3_PREFIX is a key prefix such as "prompter/exports/": no leading slash or empty segments, not "${rawPrefix}".`);
  }
  const endpoint = env.S3_ENDPOINT || undefined;
  if (endpoint !== undefined) {
    const protocol = URL.canParse(endpoint) ? new URL(endpoint).protocol : "";
    if (protocol !== "http:" && protocol !== "https:") {
      throw new ConfigError(`S3_ENDPOINT must be an http:// or https:// URL (such as http://minio:9000), not "${endpoint}".`);
    }
  }
  return {
    kind: "s3" as const,
    bucket,
    /** Every key starts with it; "" or ending in "/". */
    prefix: rawPrefix === "" || rawPrefix.endsWith("/") ? rawPrefix : `${rawPrefix}/`,
    region: env.S3_REGION || env.AWS_REGION || "us-east-1",
    /** For S3-compatible services (MinIO, Ceph RGW, R2); unset: AWS. */
    endpoint,
    forcePathStyle: booleanSetting(env, "S3_FORCE_PATH_STYLE", false),
    /** How long a download redirect stays valid: long enough to follow it, too short to pass around. */
    presignedUrlSeconds: integer(env, "S3_PRESIGNED_URL_SECONDS", 60, 1, 60),
  };
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
  const databaseUrl = connectionUrl(env, "DATABASE_URL");
  const directDatabaseUrl = connectionUrl(env, "DIRECT_DATABASE_URL");
  if (directDatabaseUrl && !databaseUrl) throw new ConfigError("DIRECT_DATABASE_URL needs DATABASE_URL (the embedded database is always direct).");
  const workerConcurrency = integer(env, "WORKER_CONCURRENCY", 2, 1, 64);
  const workerHeartbeatSeconds = durationSeconds(env, "WORKER_HEARTBEAT_INTERVAL", 10);
  const workerDeadAfterSeconds = durationSeconds(env, "WORKER_DEAD_AFTER", 30);
  if (workerDeadAfterSeconds < 2 * workerHeartbeatSeconds) {
    // One late heartbeat must not get a live worker's jobs taken away.
    throw new ConfigError("WORKER_DEAD_AFTER must be at least twice WORKER_HEARTBEAT_INTERVAL.");
  }
  return {
    production,
    /** Unset: prompter starts an embedded PostgreSQL in .data/pg. */
    databaseUrl,
    embeddedPgPort: integer(env, "EMBEDDED_PG_PORT", 54329, 1, 65535),
    embeddedPgDir: path.resolve(env.EMBEDDED_PG_DIR || ".data/pg"),
    port: integer(env, "PORT", 8001, 0, 65535),
    host: env.HOST || "0.0.0.0",
    jwtSecret,
    jwtPublicKey,
    jwtExpiresInSeconds: durationSeconds(env, "JWT_EXPIRES_IN", 24 * 3600),
    exportDir: path.resolve(env.EXPORT_DIR || "storage/exports"),
    exportStorage: exportStorage(env),
    exportRetentionDays: integer(env, "EXPORT_RETENTION_DAYS", 30, 1, 36500),
    exportWaitSeconds: integer(env, "EXPORT_WAIT_SECONDS", 60, 1, 3600),
    workerConcurrency,
    /** Per running job: its snapshot connection and a short-lived one; plus the LISTEN connection, heartbeats, metrics. */
    workerPoolMax: integer(env, "WORKER_PG_POOL_MAX", workerConcurrency * 2 + 3, workerConcurrency + 2, 1000),
    /** How often each worker records that it is alive. */
    workerHeartbeatSeconds,
    /** A worker silent this long is dead: its jobs are released to the others. */
    workerDeadAfterSeconds,
    /**
     * On SIGTERM, how long in-flight requests and running jobs may take: then
     * connections are closed and jobs aborted (to be retried by another worker).
     */
    shutdownGraceSeconds: durationSeconds(env, "SHUTDOWN_GRACE", 20),
    /** `prompter worker` serves /metrics on this port when set (0: any free port). */
    workerMetricsPort: env.WORKER_METRICS_PORT ? integer(env, "WORKER_METRICS_PORT", 0, 0, 65535) : undefined,
    poolMax: integer(env, "PG_POOL_MAX", 10, 1, 1000),
    /**
     * A connection that does not go through a transaction-mode pooler (PgBouncer):
     * LISTEN, the worker and migrations need a session of their own. Defaults to DATABASE_URL.
     */
    directDatabaseUrl,
    metricsToken: env.METRICS_TOKEN || undefined,
    alertWebhookUrl: webhookUrl(env, "ALERT_WEBHOOK_URL"),
    logLevel: logLevel(env),
    /** Grafast's mode: "development" adds planning checks that cost speed; maskError decides what clients see in either. */
    graphileEnv: env.GRAPHILE_ENV || (production ? "production" : "development"),
  };
}

export type Config = ReturnType<typeof loadConfig>;
