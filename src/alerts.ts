// Alerts to ALERT_WEBHOOK_URL: a JSON POST, retried with backoff, in the
// background. Sending never throws and never delays the caller (an export's
// error path); a process that stops waits for the alerts still on their way.
// The URL is never logged: webhook URLs often carry their secret in the path.
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { Log } from "./log.ts";
import type { Metrics } from "./metrics.ts";

const ATTEMPTS = 3;
const TIMEOUT_MS = 5000;
const FIRST_BACKOFF_MS = 1000;

export interface Alert {
  /** What happened, a stable name to route on, e.g. "export_failed". */
  alert: string;
  severity: "error" | "warning";
  summary: string;
  [detail: string]: unknown;
}

export function createAlerts(url: string | undefined, log: Log, metrics: Metrics) {
  const sending = new Set<Promise<void>>();

  async function deliver(body: string, alert: Alert): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const response = await fetch(url!, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(TIMEOUT_MS),
        });
        await response.body?.cancel();
        if (!response.ok) throw new Error(`the webhook answered HTTP ${response.status}`);
        metrics.alertDeliveries.inc({ outcome: "delivered" });
        log.info({ alert: alert.alert, attempt }, "alert delivered");
        return;
      } catch (error) {
        const fields = { alert: alert.alert, attempt, error: (error as Error).message };
        if (attempt >= ATTEMPTS) {
          metrics.alertDeliveries.inc({ outcome: "failed" });
          log.error(fields, "alert not delivered: every attempt failed");
          return;
        }
        log.warn(fields, "alert delivery failed; retrying");
        await sleep(FIRST_BACKOFF_MS * 2 ** (attempt - 1));
      }
    }
  }

  return {
    /** Posts the alert in the background when ALERT_WEBHOOK_URL is set. */
    send(alert: Alert): void {
      if (!url) return;
      const body = JSON.stringify({ ...alert, service: "prompter", hostname: hostname(), time: new Date().toISOString() });
      const delivery = deliver(body, alert).finally(() => sending.delete(delivery));
      sending.add(delivery);
    },

    /** Settles once every alert sent so far is delivered or given up. */
    async flush(): Promise<void> {
      await Promise.all(sending);
    },
  };
}

export type Alerts = ReturnType<typeof createAlerts>;
