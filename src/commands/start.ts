// Runs everything in one process: the database (embedded when DATABASE_URL is
// unset), migrations, the worker and the gateway, with one /metrics for both.
// Stops in order on SIGINT/SIGTERM.
import { loadConfig, type Config } from "../config.ts";
import { gatewayUrl, openDatabase } from "../db/database.ts";
import { migrateDatabase } from "../db/migrate.ts";
import { workerAlive } from "../heartbeats.ts";
import { createLogger, type Log } from "../log.ts";
import { createMetrics } from "../metrics.ts";
import { startGateway } from "../server/index.ts";
import { startWorker } from "../worker.ts";
import { parseCommandArgs } from "./args.ts";

export default async function start(args: string[] = []): Promise<void> {
  const { values } = parseCommandArgs(args, { "no-worker": { type: "boolean", default: false } });
  const config = loadConfig();
  const log = createLogger(config);
  const database = await openDatabase(config, (message) => log.info({}, message));
  gatewayUrl(database); // refuse before migrating when the gateway would have no login of its own
  await migrateDatabase(config.directDatabaseUrl ?? database.url, { authenticatorUrl: database.authUrl });
  const metrics = createMetrics();
  const worker = values["no-worker"] ? undefined : await startWorker(config, database.url, log.child({ component: "worker" }), { metrics });
  // Ready when this process's worker runs and beats (not while it restarts); with --no-worker, when any worker beats.
  const gateway = await startGateway(config, gatewayUrl(database), log.child({ component: "gateway" }), {
    metrics,
    readinessChecks: { worker: workerAlive(config.workerDeadAfterSeconds, worker && (() => worker.poolId)) },
  });
  stopOnSignal(log, [() => gateway.close(), async () => worker?.stop(), () => database.stop()]);
  log.info({ url: `${publicOrigin(config.host, gateway.port)}/` }, readyLine(config, gateway.port));
}

/** Start-up's last line, for the person who ran `npm start`: where to go next. */
function readyLine(config: Config, port: number): string {
  const origin = publicOrigin(config.host, port);
  const graphiql = config.production ? "" : `, GraphiQL at ${origin}/graphiql`;
  return `prompter is ready: open ${origin}/ for the web UI${graphiql}; make the first admin with: npx prompter user add <username> --admin`;
}

/** A URL a browser on this machine can open, also when listening on every interface. */
function publicOrigin(host: string, port: number): string {
  const name = host === "0.0.0.0" || host === "::" ? "localhost" : host.includes(":") ? `[${host}]` : host;
  return `http://${name}:${port}`;
}

/** On SIGINT/SIGTERM runs the stop steps in order (the database last), then exits. */
export function stopOnSignal(log: Log, steps: (() => Promise<void>)[]): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, `${signal}: shutting down`);
    let code = 0;
    for (const step of steps) {
      await step().catch((error: Error) => {
        log.error({ err: error }, "while shutting down");
        code = 1;
      });
    }
    log.info({ code }, "stopped");
    process.exit(code);
  };
  process.once("SIGINT", () => void stop("SIGINT"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
}
