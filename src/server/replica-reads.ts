// The dashboard's reads (agent effectiveness, the exports list) on a read
// replica (REPLICA_AUTH_DATABASE_URL). The session check stays on the primary,
// in the same round trip as reading the primary's WAL position; the read then
// runs on a replica that has replayed up to that position, as the role the
// check decided, so it holds everything its caller committed before asking and
// its stale flags and data versions are exact. Without a replica, or when none
// catches up in time or one fails, the read runs on the primary as before.
import type { Request } from "express";
import type pg from "pg";
import type { Config } from "../config.ts";
import { isReplicaFault, type ReadReplicas } from "../db/replicas.ts";
import { settingsAfterSessionCheck, type callerTransactions } from "./auth.ts";

type AsCaller = ReturnType<typeof callerTransactions>;

export function replicaReads(asCaller: AsCaller, replicas: ReadReplicas | undefined, config: Config): AsCaller {
  if (!replicas) return asCaller;
  return async function readAsCaller<T>(req: Request, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const {
      rows: [{ lsn }],
    } = await asCaller(req, (client) => client.query<{ lsn: string }>("select pg_current_wal_lsn()::text as lsn"));
    const connection = await replicas.caughtUp(lsn, `${req.method} ${req.baseUrl}${req.path}`);
    if (!connection) return asCaller(req, work);
    const { client } = connection;
    let healthy = false;
    try {
      await client.query("begin isolation level repeatable read read only");
      await client.query("select count(set_config(key, value, true)) from json_each_text($1::json)", [
        JSON.stringify(settingsAfterSessionCheck(req, config)),
      ]);
      const result = await work(client);
      await client.query("commit");
      healthy = true;
      return result;
    } catch (error) {
      await client.query("rollback").catch(() => {});
      if (!isReplicaFault(error)) {
        healthy = true;
        throw error;
      }
      replicas.fellBack(connection.replica, "failed", `${req.method} ${req.baseUrl}${req.path}`, error);
      return asCaller(req, work);
    } finally {
      client.release(!healthy);
    }
  };
}
