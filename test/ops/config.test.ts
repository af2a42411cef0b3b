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
  });
  expect(loadConfig({ WORKER_HEARTBEAT_INTERVAL: "5s", WORKER_DEAD_AFTER: "1m", WORKER_METRICS_PORT: "9464" }))
    .toMatchObject({ workerHeartbeatSeconds: 5, workerDeadAfterSeconds: 60, workerMetricsPort: 9464 });

  expect(refusal({ WORKER_HEARTBEAT_INTERVAL: "20", WORKER_DEAD_AFTER: "30" })).toBe("WORKER_DEAD_AFTER must be at least twice WORKER_HEARTBEAT_INTERVAL.");
  expect(refusal({ WORKER_CONCURRENCY: "4", WORKER_PG_POOL_MAX: "5" })).toMatch(/^WORKER_PG_POOL_MAX must be a whole number from 6 to 1000/);
  expect(refusal({ DIRECT_DATABASE_URL: "postgres://db/app" })).toMatch(/^DIRECT_DATABASE_URL needs DATABASE_URL/);
  expect(refusal({ ALERT_WEBHOOK_URL: "ftp://hooks.example/alert" })).toBe("ALERT_WEBHOOK_URL must be an http:// or https:// URL.");
  expect(refusal({ LOG_LEVEL: "verbose" })).toMatch(/^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent/);
  expect(refusal({ WORKER_METRICS_PORT: "70000" })).toMatch(/^WORKER_METRICS_PORT must be a whole number from 0 to 65535/);
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
