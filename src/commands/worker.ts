// `npx prompter worker`: runs queued exports and the retention schedule until
// SIGINT/SIGTERM. Start as many as you like against one database; they share
// the queue. With WORKER_METRICS_PORT it serves its own /metrics.
import { loadConfig } from "../config.ts";
import { openDatabase } from "../db/database.ts";
import { migrateDatabase } from "../db/migrate.ts";
import { createLogger, withoutPassword } from "../log.ts";
import { createMetrics, serveMetrics } from "../metrics.ts";
import { startWorker } from "../worker.ts";
import { parseCommandArgs, UsageError } from "./args.ts";
import { stopOnSignal } from "./start.ts";

export default async function worker(args: string[]): Promise<void> {
  const { positionals } = parseCommandArgs(args, {});
  if (positionals.length) throw new UsageError("usage: prompter worker");
  const config = loadConfig();
  const log = createLogger(config).child({ component: "worker" });
  const database = await openDatabase(config, (message) => log.info({}, message));
  const databaseUrl = config.directDatabaseUrl ?? database.url;
  await migrateDatabase(databaseUrl, { authenticatorUrl: database.authUrl });
  const metrics = createMetrics();
  const metricsServer = config.workerMetricsPort === undefined
    ? undefined
    : await serveMetrics(metrics, { host: config.host, port: config.workerMetricsPort, token: config.metricsToken }, log);
  const running = await startWorker(config, database.url, log, { metrics });
  stopOnSignal(log, [() => running.stop(), async () => metricsServer?.close(), () => database.stop()]);
  const storage = config.exportStorage;
  const exportsIn = storage.kind === "s3" ? `s3://${storage.bucket}/${storage.prefix}` : config.exportDir;
  log.info(
    { poolId: running.poolId, concurrency: config.workerConcurrency, exportsIn, database: withoutPassword(databaseUrl) },
    `worker running ${config.workerConcurrency} job(s) at a time; exports in ${exportsIn}`,
  );
}
