// The one place that reads the environment. Every value is checked here, so a
// bad setting stops the process at start with a message that names it.
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import path from "node:path";
import { boolean, ConfigError, connectionUrl, durationSeconds, integer, type Env } from "./config-values.ts";
import { estimatedSecretBits } from "./secret-strength.ts";

export { ConfigError };

/** A comma-separated list of postgres:// URLs (read replicas); empty when unset. */
function connectionUrls(env: Env, name: string): string[] {
  const raw = env[name]?.trim();
  if (!raw) return [];
  return raw.split(",").map((part, index) => {
    const label = `${name} (URL ${index + 1})`;
    const url = connectionUrl({ [label]: part.trim() }, label);
    if (!url) throw new ConfigError(`${label} is empty: separate the replicas' URLs with single commas.`);
    return url;
  });
}

/**
 * Read replicas: the owner's URLs for the worker's exports (and the SQL login
 * limits there), the authenticator's for the gateway's reads; one of each per
 * replica, in the same order, so each server sees both prompter logins.
 */
function readReplicas(env: Env) {
  const ownerUrls = connectionUrls(env, "REPLICA_DATABASE_URL");
  const authUrls = connectionUrls(env, "REPLICA_AUTH_DATABASE_URL");
  if (authUrls.length > 0 && !env.AUTH_DATABASE_URL) {
    throw new ConfigError("REPLICA_AUTH_DATABASE_URL needs AUTH_DATABASE_URL (the replicas' authenticator is the primary's).");
  }
  if (authUrls.some((url) => ownerUrls.some((owner) => new URL(owner).username === new URL(url).username))) {
    throw new ConfigError("REPLICA_AUTH_DATABASE_URL must log in as the authenticator, not as REPLICA_DATABASE_URL's owner.");
  }
  return {
    ownerUrls,
    authUrls,
    /** How long work waits for a replica to replay what was committed before it was asked for, before the next replica or the primary. */
    maxWaitMs: durationSeconds(env, "REPLICA_MAX_WAIT", 2) * 1000,
    /** A replica further behind than this is passed over without waiting. */
    maxLagSeconds: durationSeconds(env, "REPLICA_MAX_LAG", 30),
  };
}

/**
 * Express's "trust proxy": which hops may name the client in X-Forwarded-For.
 * Everything keyed by address (sign-in throttling, anonymous admission and
 * pacing) uses the client address it resolves, so behind a reverse proxy this
 * must be set, or every client shares the proxy's address. "true" is refused:
 * it believes the left-most address, which any client writes itself.
 */
function trustProxy(env: Env): false | number | string {
  const raw = env.TRUST_PROXY?.trim();
  if (!raw || raw === "false") return false;
  if (raw === "true") {
    throw new ConfigError(
      "TRUST_PROXY=true would take any client's own X-Forwarded-For as its address (and so let it pick a fresh one for every sign-in guess): " +
      "set the number of proxies in front of the gateway (such as 1) or their addresses/subnets (such as 10.0.0.0/8).",
    );
  }
  if (/^\d+$/.test(raw)) return Number(raw);
  const entries = raw.split(",").map((entry) => entry.trim());
  const bad = entries.find((entry) => !PROXY_NAMES.has(entry) && !isAddressOrSubnet(entry));
  if (bad !== undefined) {
    throw new ConfigError(`TRUST_PROXY must be a number of hops, or addresses/subnets (or loopback, linklocal, uniquelocal) separated by commas; "${bad}" is none of these.`);
  }
  return entries.join(", ");
}

const PROXY_NAMES = new Set(["loopback", "linklocal", "uniquelocal"]);

function isAddressOrSubnet(entry: string): boolean {
  const [address, bits, ...rest] = entry.split("/");
  const version = isIP(address);
  if (!version || rest.length) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (version === 4 ? 32 : 128));
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

/**
 * Below this a secret is guessable. zxcvbn credits a random string with about
 * 3.3 bits a character whatever its alphabet, so this asks for about 40 random
 * characters (openssl rand -base64 48 gives 64, estimated at about 210 bits);
 * a phrase of words such as "your-super-secret-jwt-key-change-me-please" estimates at 96.
 */
const MINIMUM_SECRET_BITS = 128;

/**
 * Outside production without JWT_SECRET: a random secret made once and kept in
 * the data directory, so tokens survive restarts, each data directory (each
 * deployment) has its own, and no secret from the source signs anything.
 */
function developmentSecret(dataDir: string): string {
  const file = path.join(dataDir, "jwt-secret");
  mkdirSync(dataDir, { recursive: true });
  try {
    writeFileSync(file, randomBytes(48).toString("base64url"), { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  return readFileSync(file, "utf8").trim();
}

function jwtSecretOf(env: Env, production: boolean, dataDir: string): string {
  const secret = env.JWT_SECRET;
  if (!secret) {
    if (production) throw new ConfigError("JWT_SECRET must be set in production: a random secret such as `openssl rand -base64 48` prints.");
    return developmentSecret(dataDir);
  }
  const bits = production ? estimatedSecretBits(secret) : Infinity;
  if (bits < MINIMUM_SECRET_BITS) {
    throw new ConfigError(
      `JWT_SECRET is too weak for production: zxcvbn estimates it at about ${Math.floor(bits)} bits of guessing (${MINIMUM_SECRET_BITS} needed); ` +
      "use a random secret, such as `openssl rand -base64 48` prints, not words or patterns.",
    );
  }
  return secret;
}

/**
 * Every API transaction runs with these (statement_timeout per role, and
 * lock_timeout), set in the transaction itself: settings of a role made with
 * ALTER ROLE do not apply after SET ROLE.
 */
function apiTimeouts(env: Env) {
  const statementMs = {
    app_anonymous: durationSeconds(env, "STATEMENT_TIMEOUT_ANONYMOUS", 5) * 1000,
    app_user: durationSeconds(env, "STATEMENT_TIMEOUT_USER", 15) * 1000,
    app_admin: durationSeconds(env, "STATEMENT_TIMEOUT_ADMIN", 60) * 1000,
  };
  const lockMs = durationSeconds(env, "LOCK_TIMEOUT", 3) * 1000;
  if (Object.values(statementMs).some((ms) => ms < lockMs)) {
    throw new ConfigError("LOCK_TIMEOUT must not be more than any STATEMENT_TIMEOUT_*.");
  }
  return { statementMs, lockMs };
}

/** How many requests one caller (a user, or an address when anonymous) may have in flight, and waiting their turn. */
function callerLimits(env: Env) {
  const maxConcurrent = integer(env, "CALLER_MAX_CONCURRENT", 4, 1, 1000);
  return {
    maxConcurrent,
    maxQueued: integer(env, "CALLER_MAX_QUEUED", maxConcurrent * 16, 0, 100_000),
    maxWaitSeconds: durationSeconds(env, "CALLER_MAX_WAIT", 3),
  };
}

/**
 * What one client connection may take of the process: its headers and its
 * body must arrive within seconds, an idle kept-alive connection is closed
 * soon, and open connections are capped in all and per client address (a
 * trusted proxy's own connections count only in all).
 */
function connectionLimits(env: Env) {
  const maxConnections = integer(env, "MAX_CONNECTIONS", 1000, 1, 1_000_000);
  const maxConnectionsPerAddress = integer(env, "MAX_CONNECTIONS_PER_ADDRESS", 128, 1, 1_000_000);
  if (maxConnectionsPerAddress > maxConnections) throw new ConfigError("MAX_CONNECTIONS_PER_ADDRESS must not be more than MAX_CONNECTIONS.");
  return {
    headersTimeoutSeconds: durationSeconds(env, "HEADERS_TIMEOUT", 10),
    bodyTimeoutSeconds: durationSeconds(env, "BODY_TIMEOUT", 10),
    keepAliveTimeoutSeconds: durationSeconds(env, "KEEP_ALIVE_TIMEOUT", 5),
    maxConnections,
    maxConnectionsPerAddress,
  };
}

/** What one GraphQL operation may ask for (see src/server/graphql-limits.ts and the README). */
function graphqlLimits(env: Env) {
  const maxPageSize = integer(env, "GRAPHQL_MAX_PAGE_SIZE", 1000, 1, 100_000);
  const defaultPageSize = integer(env, "GRAPHQL_DEFAULT_PAGE_SIZE", 100, 1, 100_000);
  if (defaultPageSize > maxPageSize) throw new ConfigError("GRAPHQL_DEFAULT_PAGE_SIZE must not be more than GRAPHQL_MAX_PAGE_SIZE.");
  const maxCost = integer(env, "GRAPHQL_MAX_COST", 50_000, 100, 10_000_000);
  return {
    defaultPageSize,
    maxPageSize,
    maxAliases: integer(env, "GRAPHQL_MAX_ALIASES", 15, 1, 1000),
    maxDepth: integer(env, "GRAPHQL_MAX_DEPTH", 10, 2, 100),
    maxTokens: integer(env, "GRAPHQL_MAX_TOKENS", 2000, 100, 100_000),
    /** GraphQL Armor's weights; each page size that applies (literal, variable or default) multiplies the cost of what is inside it. */
    maxCost,
    /** Operations costing less never wait for costly ones (a page of 100 rows of a few fields costs about 1,000). */
    lightCost: integer(env, "GRAPHQL_LIGHT_COST", Math.min(2000, maxCost), 1, maxCost),
    /** Per caller: its costly operations (GRAPHQL_LIGHT_COST or more) are paced to this much estimated cost a second. */
    costPerSecond: integer(env, "GRAPHQL_COST_PER_SECOND", maxCost, 1, 100_000_000),
    /** Per caller (an address, when anonymous): sign-ins and password changes are paced to this many a second, out of the same budget. */
    signInsPerSecond: integer(env, "SIGN_INS_PER_SECOND", 10, 1, 10_000),
    /** Sign-ins and password changes checked at once, gateway-wide: each is a bcrypt in PostgreSQL. */
    signInMaxConcurrent: integer(env, "SIGN_IN_MAX_CONCURRENT", 2, 1, 1000),
    maxResponseBytes: integer(env, "GRAPHQL_MAX_RESPONSE_BYTES", 20_000_000, 10_000, 1_000_000_000),
  };
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
    forcePathStyle: boolean(env, "S3_FORCE_PATH_STYLE", false),
    /** How long a download redirect stays valid: long enough to follow it, too short to pass around. */
    presignedUrlSeconds: integer(env, "S3_PRESIGNED_URL_SECONDS", 60, 1, 60),
  };
}

export function loadConfig(env: Env = process.env) {
  const production = env.NODE_ENV === "production";
  const dataDir = path.resolve(env.DATA_DIR || ".data");
  // Read (or made) when first needed: only the gateway and `prompter token` sign or verify.
  let jwtSecret: string | undefined;
  if (production) jwtSecret = jwtSecretOf(env, production, dataDir);
  const jwtPublicKey = env.JWT_PUBLIC_KEY?.replace(/\\n/g, "\n") || undefined;
  if (jwtPublicKey && !jwtPublicKey.includes("BEGIN PUBLIC KEY")) {
    throw new ConfigError("JWT_PUBLIC_KEY must be a PEM public key (-----BEGIN PUBLIC KEY-----).");
  }
  const jwtIssuer = env.JWT_ISSUER || undefined;
  if (jwtPublicKey && !jwtIssuer) {
    throw new ConfigError("JWT_ISSUER must be set with JWT_PUBLIC_KEY: the identity provider's issuer (its tokens' iss claim).");
  }
  const jwtExpiresInSeconds = durationSeconds(env, "JWT_EXPIRES_IN", 24 * 3600);
  const jwtMaxLifetimeSeconds = durationSeconds(env, "JWT_MAX_LIFETIME", Math.max(24 * 3600, jwtExpiresInSeconds));
  if (jwtMaxLifetimeSeconds < jwtExpiresInSeconds) {
    throw new ConfigError("JWT_MAX_LIFETIME must be at least JWT_EXPIRES_IN, or the gateway would refuse its own tokens.");
  }
  const databaseUrl = connectionUrl(env, "DATABASE_URL");
  const authDatabaseUrl = connectionUrl(env, "AUTH_DATABASE_URL");
  const authDirectDatabaseUrl = connectionUrl(env, "AUTH_DIRECT_DATABASE_URL");
  if (authDirectDatabaseUrl && !authDatabaseUrl) throw new ConfigError("AUTH_DIRECT_DATABASE_URL needs AUTH_DATABASE_URL.");
  if (authDatabaseUrl && !databaseUrl) throw new ConfigError("AUTH_DATABASE_URL needs DATABASE_URL (the embedded database makes its own authenticator).");
  if (authDatabaseUrl && databaseUrl && new URL(authDatabaseUrl).username === new URL(databaseUrl).username) {
    throw new ConfigError("AUTH_DATABASE_URL must log in as a role of its own (the authenticator), not as DATABASE_URL's owner.");
  }
  const directDatabaseUrl = connectionUrl(env, "DIRECT_DATABASE_URL");
  if (directDatabaseUrl && !databaseUrl) throw new ConfigError("DIRECT_DATABASE_URL needs DATABASE_URL (the embedded database is always direct).");
  const workerConcurrency = integer(env, "WORKER_CONCURRENCY", 2, 1, 64);
  const poolMax = integer(env, "PG_POOL_MAX", 10, 1, 1000);
  const workerHeartbeatSeconds = durationSeconds(env, "WORKER_HEARTBEAT_INTERVAL", 10);
  const workerDeadAfterSeconds = durationSeconds(env, "WORKER_DEAD_AFTER", 30);
  if (workerDeadAfterSeconds < 2 * workerHeartbeatSeconds) {
    // One late heartbeat must not get a live worker's jobs taken away.
    throw new ConfigError("WORKER_DEAD_AFTER must be at least twice WORKER_HEARTBEAT_INTERVAL.");
  }
  return {
    production,
    /** The owner's connection (migrations, worker, CLI). Unset: prompter starts an embedded PostgreSQL in DATA_DIR/pg. */
    databaseUrl,
    /** The gateway's only login: the authenticator, which may only become the API roles. */
    authDatabaseUrl,
    /** The authenticator's session of its own for LISTEN, past a transaction-mode pooler. Defaults to AUTH_DATABASE_URL. */
    authDirectDatabaseUrl,
    /** Generated secrets (and the embedded database) of this deployment. */
    dataDir,
    embeddedPgPort: integer(env, "EMBEDDED_PG_PORT", 54329, 1, 65535),
    embeddedPgDir: path.resolve(env.EMBEDDED_PG_DIR || path.join(dataDir, "pg")),
    port: integer(env, "PORT", 8001, 0, 65535),
    /** Loopback unless told otherwise: a development instance is not for the network. */
    host: env.HOST || "127.0.0.1",
    get jwtSecret(): string {
      jwtSecret ??= jwtSecretOf(env, production, dataDir);
      return jwtSecret;
    },
    jwtPublicKey,
    jwtExpiresInSeconds,
    /** The iss claim RS256 tokens must carry (required with JWT_PUBLIC_KEY). */
    jwtIssuer,
    /** Tokens valid for longer than this (exp from iat, or from now) are refused, whoever signed them. */
    jwtMaxLifetimeSeconds,
    /** Whether anyone may create an account (GraphQL register); operators always can (`prompter user add`). */
    allowRegistration: boolean(env, "ALLOW_REGISTRATION", !production),
    trustProxy: trustProxy(env),
    exportDir: path.resolve(env.EXPORT_DIR || "storage/exports"),
    exportStorage: exportStorage(env),
    exportRetentionDays: integer(env, "EXPORT_RETENTION_DAYS", 30, 1, 36500),
    /** How long recordRun remembers an idempotency key (its result, for a retry). */
    runKeyRetentionDays: integer(env, "RUN_KEY_RETENTION_DAYS", 7, 1, 36500),
    exportWaitSeconds: integer(env, "EXPORT_WAIT_SECONDS", 60, 1, 3600),
    workerConcurrency,
    /** Per running job: its snapshot connection and a short-lived one; plus the LISTEN connection, heartbeats, metrics. */
    workerPoolMax: integer(env, "WORKER_PG_POOL_MAX", workerConcurrency * 2 + 3, workerConcurrency + 2, 1000),
    /** How often each worker records that it is alive. */
    workerHeartbeatSeconds,
    /** A worker silent this long is dead: its jobs are released to the others. */
    workerDeadAfterSeconds,
    /** How often a worker cancels what SQL logins run past their configured limits. */
    sqlLoginCheckSeconds: durationSeconds(env, "SQL_LOGIN_CHECK_INTERVAL", 10),
    /**
     * On SIGTERM, how long in-flight requests and running jobs may take: then
     * connections are closed and jobs aborted (to be retried by another worker).
     */
    shutdownGraceSeconds: durationSeconds(env, "SHUTDOWN_GRACE", 20),
    /** `prompter worker` serves /metrics on this port when set (0: any free port). */
    workerMetricsPort: env.WORKER_METRICS_PORT ? integer(env, "WORKER_METRICS_PORT", 0, 0, 65535) : undefined,
    /** The worker gives up on opening a database connection after this long (then retries). */
    workerConnectTimeoutSeconds: durationSeconds(env, "WORKER_PG_CONNECT_TIMEOUT", 10),
    /** The longest any statement of the worker may run (a hung query then fails, and its job is retried), except an export's COPY. */
    workerStatementTimeoutSeconds: durationSeconds(env, "WORKER_STATEMENT_TIMEOUT", 300),
    /** The longest an export's COPY may run (or wait for a lock): then the attempt fails and is retried. */
    exportStatementTimeoutSeconds: durationSeconds(env, "EXPORT_STATEMENT_TIMEOUT", 3600),
    poolMax,
    /** How long a request waits for a free database connection before 503 SERVER_BUSY. */
    poolWaitSeconds: durationSeconds(env, "PG_POOL_WAIT", 3),
    /** Requests beyond this many already waiting for a connection are answered 503 SERVER_BUSY at once. */
    poolMaxWaiting: integer(env, "PG_POOL_MAX_WAITING", poolMax * 5, 0, 100_000),
    /**
     * How many statement texts each gateway connection prepares, as PostGraphile
     * (@dataplan/pg) reads the same variable for its own; 0 prepares none, for
     * a PgBouncer older than 1.21 in transaction mode.
     */
    preparedStatementsPerConnection: integer(env, "DATAPLAN_PG_PREPARED_STATEMENT_CACHE_SIZE", 100, 0, 100_000),
    apiTimeouts: apiTimeouts(env),
    replicas: readReplicas(env),
    callerLimits: callerLimits(env),
    connectionLimits: connectionLimits(env),
    graphqlLimits: graphqlLimits(env),
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
