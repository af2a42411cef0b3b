// The gateway's database pool, with a bounded queue: a request waits at most
// PG_POOL_WAIT for a connection, and when PG_POOL_MAX_WAITING requests are
// waiting already it is turned away at once. Either way it gets 503
// SERVER_BUSY with Retry-After, instead of work piling up behind the pool.
import type pg from "pg";
import type { Config } from "../config.ts";
import { resilientPool } from "../db/pool.ts";
import type { Log } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { serverBusy } from "./errors.ts";

type ConnectCallback = (error: Error | undefined, client?: pg.PoolClient, done?: (release?: unknown) => void) => void;

/** `authenticatorUrl`: the gateway's only login. */
export function gatewayPool(config: Config, authenticatorUrl: string, metrics: Metrics, log: Log): pg.Pool {
  const pool = resilientPool(
    {
      connectionString: authenticatorUrl,
      max: config.poolMax,
      connectionTimeoutMillis: config.poolWaitSeconds * 1000,
      application_name: "prompter-gateway",
      // A request's transaction (begin, its queries, commit) goes out in one round trip (auth.ts).
      pipeline: true,
    },
    log,
  );
  const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
  const busy = () => {
    metrics.gatewayBusy.inc();
    return serverBusy(config.poolWaitSeconds);
  };
  async function boundedConnect(): Promise<pg.PoolClient> {
    // Only a request that queues behind a full pool is "busy"; a new connection
    // that times out means the database is unreachable, and keeps pg's error.
    const queued = pool.totalCount >= config.poolMax && pool.idleCount === 0;
    if (queued && pool.waitingCount >= config.poolMaxWaiting) throw busy();
    try {
      return await connect();
    } catch (error) {
      if (queued && /timeout exceeded when trying to connect/.test((error as Error).message)) throw busy();
      throw error;
    }
  }
  // pool.query() connects with a callback.
  pool.connect = ((callback?: ConnectCallback) => {
    const connecting = boundedConnect();
    if (!callback) return connecting;
    connecting.then((client) => callback(undefined, client, (release) => client.release(release as Error)), (error) => callback(error));
    return undefined;
  }) as typeof pool.connect;
  return pool;
}
