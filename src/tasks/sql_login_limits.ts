// The "sql_login_limits" task: cancels statements of SQL logins running past
// their configured statement timeout and ends their sessions idle in a
// transaction past their idle limit or in a transaction past their
// transaction limit (app_private.enforce_sql_login_limits), whatever the login
// set for itself. It also lets SQL logins back in that a migration which did
// not finish kept out (app_private.restore_sql_login_access), and holds SQL
// logins to the same limits on the read replicas. The worker runs it every
// SQL_LOGIN_CHECK_INTERVAL on a timer of its own, not through the queue, so
// worker slots busy with long exports cannot delay it.
import { assertJobObject, type TaskContext } from "../task-context.ts";

interface Enforced {
  pid: number;
  login: string;
  reason: "statement_timeout" | "idle_in_transaction_timeout" | "transaction_timeout" | "advisory_lock";
  action: "cancel" | "terminate";
  running_for_seconds: number;
  done: boolean;
}

const ENFORCED_MESSAGES: Record<Enforced["reason"], string> = {
  statement_timeout: "SQL login statement cancelled: past its statement timeout",
  idle_in_transaction_timeout: "SQL login session ended: past its idle limit",
  transaction_timeout: "SQL login session ended: its transaction is past its transaction limit",
  advisory_lock: "SQL login session ended: it held an advisory lock",
};

const ENFORCE = `select pid, login, reason, action, extract(epoch from running_for)::float8 as running_for_seconds, done
  from app_private.enforce_sql_login_limits()`;

export default async function sqlLoginLimitsTask(payload: unknown, _helpers: unknown, context: TaskContext): Promise<void> {
  assertJobObject("sql_login_limits", payload);
  report(context, (await context.pool.query<Enforced>(ENFORCE)).rows, {});
  // Analysts pointed at a read replica are held to the same limits there.
  for (const { replica, result, error } of await context.replicas?.onEach((pool) => pool.query<Enforced>(ENFORCE)) ?? []) {
    if (error) context.log.warn({ replica, error: error.message }, "could not check the SQL logins' limits on a replica");
    else report(context, result!.rows, { replica });
  }
  const { rows: restored } = await context.pool.query<{ login: string }>("select login from app_private.restore_sql_login_access() login");
  if (restored.length) {
    context.log.warn({ logins: restored.map((row) => row.login) }, "SQL logins let back in: a migration that kept them out did not finish");
  }
}

function report(context: TaskContext, rows: Enforced[], where: { replica?: string }): void {
  for (const row of rows) {
    const fields = { ...where, pid: row.pid, login: row.login, reason: row.reason, runningForSeconds: Math.round(row.running_for_seconds) };
    if (!row.done) {
      // The owner is not a member of this login (made by hand?): nothing could be done.
      context.log.error(fields, `SQL login past its limit, but the owner may not ${row.action} its session`);
      continue;
    }
    context.metrics.sqlLoginCancellations.inc({ reason: row.reason });
    context.log.warn(fields, ENFORCED_MESSAGES[row.reason]);
  }
}
