// The operations settings refuse bad values with a message naming them, and
// the logger keeps secrets out of its lines.
import { Writable } from "node:stream";
import { expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { createLogger, withoutPassword } from "../../src/log.ts";

const refusal = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error(`${JSON.stringify(env)} was accepted`);
};

it("has working defaults and refuses settings that cannot work", () => {
  expect(loadConfig({})).toMatchObject({
    workerConcurrency: 2,
    workerPoolMax: 7,
    workerHeartbeatSeconds: 10,
    workerDeadAfterSeconds: 30,
    shutdownGraceSeconds: 20,
    workerMetricsPort: undefined,
    directDatabaseUrl: undefined,
    logLevel: "info",
    workerConnectTimeoutSeconds: 10,
    workerStatementTimeoutSeconds: 300,
    exportStatementTimeoutSeconds: 3600,
    preparedStatementsPerConnection: 100,
  });
  expect(loadConfig({ DATAPLAN_PG_PREPARED_STATEMENT_CACHE_SIZE: "0" }).preparedStatementsPerConnection).toBe(0);
  expect(refusal({ DATAPLAN_PG_PREPARED_STATEMENT_CACHE_SIZE: "-1" })).toMatch(/^DATAPLAN_PG_PREPARED_STATEMENT_CACHE_SIZE must be a whole number/);
  expect(loadConfig({ WORKER_STATEMENT_TIMEOUT: "2m", EXPORT_STATEMENT_TIMEOUT: "6h", WORKER_PG_CONNECT_TIMEOUT: "3" }))
    .toMatchObject({ workerStatementTimeoutSeconds: 120, exportStatementTimeoutSeconds: 6 * 3600, workerConnectTimeoutSeconds: 3 });
  expect(refusal({ EXPORT_STATEMENT_TIMEOUT: "0" })).toMatch(/^EXPORT_STATEMENT_TIMEOUT must be a duration/);
  expect(refusal({ WORKER_STATEMENT_TIMEOUT: "forever" })).toMatch(/^WORKER_STATEMENT_TIMEOUT must be a duration/);
  expect(loadConfig({ WORKER_HEARTBEAT_INTERVAL: "5s", WORKER_DEAD_AFTER: "1m", WORKER_METRICS_PORT: "9464" }))
    .toMatchObject({ workerHeartbeatSeconds: 5, workerDeadAfterSeconds: 60, workerMetricsPort: 9464 });

  expect(refusal({ WORKER_HEARTBEAT_INTERVAL: "20", WORKER_DEAD_AFTER: "30" })).toBe("WORKER_DEAD_AFTER must be at least twice WORKER_HEARTBEAT_INTERVAL.");
  expect(refusal({ WORKER_CONCURRENCY: "4", WORKER_PG_POOL_MAX: "5" })).toMatch(/^WORKER_PG_POOL_MAX must be a whole number from 6 to 1000/);
  expect(refusal({ DIRECT_DATABASE_URL: "postgres://db/app" })).toMatch(/^DIRECT_DATABASE_URL needs DATABASE_URL/);
  expect(refusal({ ALERT_WEBHOOK_URL: "ftp://hooks.example/alert" })).toBe("ALERT_WEBHOOK_URL must be an http:// or https:// URL.");
  expect(refusal({ LOG_LEVEL: "verbose" })).toMatch(/^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent/);
  expect(refusal({ WORKER_METRICS_PORT: "70000" })).toMatch(/^WORKER_METRICS_PORT must be a whole number from 0 to 65535/);
});

it("authentication settings: issuer with the public key, bounded lifetime, registration and proxies", () => {
  const publicKey = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----";
  expect(loadConfig({})).toMatchObject({ allowRegistration: true, jwtMaxLifetimeSeconds: 86400, jwtIssuer: undefined, trustProxy: false });
  expect(loadConfig({ NODE_ENV: "production", JWT_SECRET: "hL3bV0q9xWkZr7Tn2YpC8uF1mJ5sD4gA6eR0tK9oQzNwXyE3" }).allowRegistration).toBe(false);
  expect(loadConfig({ JWT_EXPIRES_IN: "2d" }).jwtMaxLifetimeSeconds).toBe(2 * 86400);
  expect(loadConfig({ JWT_PUBLIC_KEY: publicKey, JWT_ISSUER: "https://idp.example/", TRUST_PROXY: "loopback, 10.0.0.0/8", ALLOW_REGISTRATION: "false" }))
    .toMatchObject({ jwtIssuer: "https://idp.example/", trustProxy: "loopback, 10.0.0.0/8", allowRegistration: false });
  expect(loadConfig({ TRUST_PROXY: "2" }).trustProxy).toBe(2);

  expect(refusal({ JWT_PUBLIC_KEY: publicKey })).toMatch(/^JWT_ISSUER must be set with JWT_PUBLIC_KEY/);
  expect(refusal({ JWT_EXPIRES_IN: "2h", JWT_MAX_LIFETIME: "1h" })).toMatch(/^JWT_MAX_LIFETIME must be at least JWT_EXPIRES_IN/);
  expect(refusal({ ALLOW_REGISTRATION: "yes" })).toBe('ALLOW_REGISTRATION must be true or false, not "yes".');
  expect(refusal({ TRUST_PROXY: "*; rm" })).toMatch(/^TRUST_PROXY must be/);
  // "true" believes whatever X-Forwarded-For a client writes: a fresh address for every guess.
  expect(refusal({ TRUST_PROXY: "true" })).toMatch(/^TRUST_PROXY=true would take any client's own X-Forwarded-For as its address/);
  expect(refusal({ TRUST_PROXY: "10.0.0.0/33" })).toMatch(/^TRUST_PROXY must be .*"10.0.0.0\/33" is none of these/);
  expect(refusal({ TRUST_PROXY: "loopback, proxy.internal" })).toMatch(/"proxy.internal" is none of these/);
  expect(loadConfig({ TRUST_PROXY: "1" }).trustProxy).toBe(1);
  expect(loadConfig({ TRUST_PROXY: "192.0.2.10,2001:db8::/32" }).trustProxy).toBe("192.0.2.10, 2001:db8::/32");
});

it("connection limits: seconds for headers, body and idle keep-alive, and caps in all and per address", () => {
  expect(loadConfig({}).connectionLimits).toEqual({
    headersTimeoutSeconds: 10, bodyTimeoutSeconds: 10, keepAliveTimeoutSeconds: 5, maxConnections: 1000, maxConnectionsPerAddress: 128,
  });
  expect(loadConfig({ HEADERS_TIMEOUT: "5", BODY_TIMEOUT: "1m", MAX_CONNECTIONS: "50", MAX_CONNECTIONS_PER_ADDRESS: "50" }).connectionLimits)
    .toMatchObject({ headersTimeoutSeconds: 5, bodyTimeoutSeconds: 60, maxConnections: 50, maxConnectionsPerAddress: 50 });
  expect(refusal({ HEADERS_TIMEOUT: "0" })).toMatch(/^HEADERS_TIMEOUT must be a duration/);
  expect(refusal({ KEEP_ALIVE_TIMEOUT: "forever" })).toMatch(/^KEEP_ALIVE_TIMEOUT must be a duration/);
  expect(refusal({ MAX_CONNECTIONS: "0" })).toMatch(/^MAX_CONNECTIONS must be a whole number from 1/);
  expect(refusal({ MAX_CONNECTIONS: "10", MAX_CONNECTIONS_PER_ADDRESS: "20" })).toBe("MAX_CONNECTIONS_PER_ADDRESS must not be more than MAX_CONNECTIONS.");
});

it("keeps exports in EXPORT_DIR by default, and refuses S3 settings that cannot work", () => {
  expect(loadConfig({}).exportStorage).toEqual({ kind: "local" });
  const s3 = { EXPORT_STORAGE: "s3", S3_BUCKET: "prompter-exports" };
  expect(loadConfig(s3).exportStorage).toEqual({
    kind: "s3", bucket: "prompter-exports", prefix: "", region: "us-east-1", endpoint: undefined, forcePathStyle: false, presignedUrlSeconds: 60,
  });
  expect(loadConfig({ ...s3, S3_PREFIX: "team-a/exports", S3_REGION: "eu-west-1", S3_ENDPOINT: "http://minio:9000", S3_FORCE_PATH_STYLE: "true" }).exportStorage)
    .toMatchObject({ prefix: "team-a/exports/", region: "eu-west-1", endpoint: "http://minio:9000", forcePathStyle: true });
  expect(loadConfig({ ...s3, AWS_REGION: "ap-south-1" }).exportStorage).toMatchObject({ region: "ap-south-1" });

  expect(refusal({ EXPORT_STORAGE: "gcs" })).toBe('EXPORT_STORAGE must be local or s3, not "gcs".');
  expect(refusal({ EXPORT_STORAGE: "s3" })).toMatch(/^EXPORT_STORAGE=s3 needs S3_BUCKET/);
  expect(refusal({ ...s3, S3_BUCKET: "Prompter_Exports" })).toMatch(/^EXPORT_STORAGE=s3 needs S3_BUCKET.*not "Prompter_Exports"/);
  expect(refusal({ ...s3, S3_PREFIX: "/exports" })).toMatch(/^S3_PREFIX is a key prefix/);
  expect(refusal({ ...s3, S3_PREFIX: "a//b" })).toMatch(/^S3_PREFIX is a key prefix/);
  expect(refusal({ ...s3, S3_ENDPOINT: "minio:9000" })).toMatch(/^S3_ENDPOINT must be an http:\/\/ or https:\/\/ URL/);
  expect(refusal({ ...s3, S3_FORCE_PATH_STYLE: "yes" })).toBe('S3_FORCE_PATH_STYLE must be true or false, not "yes".');
  expect(refusal({ ...s3, S3_PRESIGNED_URL_SECONDS: "3600" })).toMatch(/^S3_PRESIGNED_URL_SECONDS must be a whole number from 1 to 60/);
});

it("writes JSON lines without credentials: redacted fields, passwordless connection strings", () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const log = createLogger({ logLevel: "info" }, sink).child({ component: "test" });
  log.info(
    {
      authorization: "Bearer header.payload.signature",
      headers: { authorization: "Bearer other.token.here", cookie: "session=abc" },
      password: "correct horse",
      databaseUrl: "postgres://app:hunter2@db/app",
      database: withoutPassword("postgres://app:hunter2@db/app"),
      requestId: "kept",
    },
    "a line",
  );
  log.debug({}, "below the level");
  expect(lines).toHaveLength(1);
  const line = JSON.parse(lines[0]);
  expect(line).toMatchObject({
    level: "info",
    msg: "a line",
    component: "test",
    authorization: "[redacted]",
    headers: { authorization: "[redacted]", cookie: "[redacted]" },
    password: "[redacted]",
    databaseUrl: "[redacted]",
    database: "postgres://app:redacted@db/app",
    requestId: "kept",
  });
  expect(lines[0]).not.toMatch(/signature|other\.token|abc|horse|hunter2/);
});

const primary = { DATABASE_URL: "postgres://owner@primary/prompter", AUTH_DATABASE_URL: "postgres://auth@primary/prompter" };

it("reads replica lists, and refuses lists that cannot work", () => {
  expect(loadConfig(primary).replicas).toEqual({ ownerUrls: [], authUrls: [], maxWaitMs: 2000, maxLagSeconds: 30 });
  expect(loadConfig({
    ...primary,
    REPLICA_DATABASE_URL: "postgres://owner@r1/prompter, postgres://owner@r2:6432/prompter",
    REPLICA_AUTH_DATABASE_URL: "postgres://auth@r1/prompter",
    REPLICA_MAX_WAIT: "5s",
    REPLICA_MAX_LAG: "2m",
  }).replicas).toEqual({
    ownerUrls: ["postgres://owner@r1/prompter", "postgres://owner@r2:6432/prompter"],
    authUrls: ["postgres://auth@r1/prompter"],
    maxWaitMs: 5000,
    maxLagSeconds: 120,
  });
  expect(refusal({ ...primary, REPLICA_DATABASE_URL: "postgres://owner@r1/prompter,,postgres://owner@r2/prompter" }))
    .toMatch(/^REPLICA_DATABASE_URL \(URL 2\) is empty/);
  expect(refusal({ ...primary, REPLICA_DATABASE_URL: "postgres://owner@r1/prompter,mysql://r2/prompter" }))
    .toMatch(/^REPLICA_DATABASE_URL \(URL 2\) must be a postgres:\/\/ URL/);
  expect(refusal({ DATABASE_URL: primary.DATABASE_URL, REPLICA_AUTH_DATABASE_URL: "postgres://auth@r1/prompter" }))
    .toMatch(/^REPLICA_AUTH_DATABASE_URL needs AUTH_DATABASE_URL/);
  expect(refusal({ ...primary, REPLICA_DATABASE_URL: "postgres://owner@r1/prompter", REPLICA_AUTH_DATABASE_URL: "postgres://owner@r1/prompter" }))
    .toMatch(/^REPLICA_AUTH_DATABASE_URL must log in as the authenticator/);
  expect(refusal({ ...primary, REPLICA_MAX_WAIT: "0" })).toMatch(/^REPLICA_MAX_WAIT must be a duration/);
});
