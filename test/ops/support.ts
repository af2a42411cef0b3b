// Helpers for the operations tests: worker processes with their own /metrics,
// reading Prometheus' text format, and a database URL carrying a password so
// tests can check that it never reaches a log.
import { spawnPrompter, type PrompterProcess } from "../support/server.ts";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus' text exposition format (label values without escaped quotes suffice here). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map(([, name, value]) => [name, value]));
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** The sum of the samples named `name` whose labels include `labels`. */
export function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
    .reduce((sum, sample) => sum + sample.value, 0);
}

export async function scrape(url: string, token?: string): Promise<{ status: number; samples: Sample[] }> {
  const response = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: response.status, samples: parseMetrics(await response.text()) };
}

/** The URL with a password: the test server's own, or one a trust-authenticated server ignores. */
export function withPassword(databaseUrl: string): { url: string; password: string } {
  const url = new URL(databaseUrl);
  if (!url.password) url.password = "ops-test-password-never-logged";
  return { url: url.toString(), password: decodeURIComponent(url.password) };
}

export interface WorkerProcess extends PrompterProcess {
  metricsUrl: string;
}

/** `npx prompter worker` serving /metrics on a free port; resolves once it takes jobs. */
export async function spawnMetricsWorker(databaseUrl: string, env: Record<string, string>): Promise<WorkerProcess> {
  const worker = await spawnPrompter({
    databaseUrl,
    args: ["worker"],
    env: { WORKER_METRICS_PORT: "0", ...env },
    ready: (output) => output.includes("worker running"),
  });
  const port = /metrics listening on http:\/\/[^\s:]+:(\d+)/.exec(worker.output().stdout)![1];
  return { ...worker, metricsUrl: `http://127.0.0.1:${port}/metrics` };
}
