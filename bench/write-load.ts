// The write paths' load: GraphQL clients writing prompts, and the CPU they cost.
import { readFile } from "node:fs/promises";
import http from "node:http";
import { base, round, tokenFor } from "./harness.ts";

// The write paths' clients share the machine's two cores with the gateway and
// PostgreSQL: node:http with kept-alive connections costs them about a third of
// what fetch does (0.87 ms of CPU per request), which the service would lose.
export const writeAgent = new http.Agent({ keepAlive: true, maxSockets: 20 });

export async function graphql(token: string, query: string, variables: Record<string, unknown>, origin = base) {
  const payload = JSON.stringify({ query, variables });
  const text = await new Promise<string>((resolve, reject) => {
    const request = http.request(`${origin}/graphql`, {
      method: "POST", agent: writeAgent,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve(Buffer.concat(chunks).toString()));
    });
    request.on("error", reject);
    request.end(payload);
  });
  const body = JSON.parse(text);
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

// /proc counts CPU time in USER_HZ ticks, 100 a second on Linux.
export const CLOCK_TICKS = 100;

/** CPU seconds a process has used (user + system), from /proc. */
export async function processCpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Busy and total CPU seconds of the whole machine, from /proc/stat. */
export async function machineCpuSeconds(): Promise<{ busy: number; all: number }> {
  const ticks = (await readFile("/proc/stat", "utf8")).split("\n")[0].split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = ticks;
  return { busy: (user + nice + system + irq + softirq + steal) / CLOCK_TICKS, all: (user + nice + system + idle + iowait + irq + softirq + steal) / CLOCK_TICKS };
}

/** What a write path used while `measure` ran: prompts written, seconds, and CPU seconds of the gateway, this client and the machine. */
export interface CpuUse { prompts: number; seconds: number; gateway: number; client: number; busy: number; all: number }

export async function cpuUse(gatewayPid: number, measure: () => Promise<number>): Promise<CpuUse> {
  const [gateway0, machine0, client0, started] = [await processCpuSeconds(gatewayPid), await machineCpuSeconds(), process.cpuUsage(), Date.now()];
  const prompts = await measure();
  const [gateway1, machine1, client1] = [await processCpuSeconds(gatewayPid), await machineCpuSeconds(), process.cpuUsage(client0)];
  return { prompts, seconds: (Date.now() - started) / 1000, gateway: gateway1 - gateway0, client: (client1.user + client1.system) / 1e6, busy: machine1.busy - machine0.busy, all: machine1.all - machine0.all };
}

export const addCpuUse = (a: CpuUse, b: CpuUse): CpuUse => ({ prompts: a.prompts + b.prompts, seconds: a.seconds + b.seconds, gateway: a.gateway + b.gateway, client: a.client + b.client, busy: a.busy + b.busy, all: a.all + b.all });

/**
 * Prompts/s, and where a write path's CPU goes per prompt: the gateway, this
 * client, and the rest of the machine (PostgreSQL, on an otherwise idle machine).
 */
export function cpuReport(use: CpuUse) {
  const perPrompt = (seconds: number) => round((seconds * 1000) / use.prompts, 3);
  return {
    prompts_per_s: round(use.prompts / use.seconds, 1),
    cpu_ms_per_prompt: { gateway: perPrompt(use.gateway), client: perPrompt(use.client), rest_of_machine: perPrompt(use.busy - use.gateway - use.client) },
    machine_busy: round(use.busy / use.all, 2),
  };
}

// Each write path runs unmeasured for a while first: the gateway's JIT compiles
// the path's code, and the figures are those of the service in its steady state.
export const WARM_UP_MS = 3000;
export const MEASURED_MS = 10_000;

export type Write = (client: number) => Promise<void>;

/** `clients` loops of `write` (one prompt each) for `ms`: the prompts written. */
export async function writeFor(clients: number, ms: number, write: Write): Promise<number> {
  const until = Date.now() + ms;
  let prompts = 0;
  await Promise.all(Array.from({ length: clients }, async (_, i) => {
    while (Date.now() < until) {
      await write(i);
      prompts += 1;
    }
  }));
  return prompts;
}

/** 20 clients writing for WARM_UP_MS, then counted for MEASURED_MS. */
export async function writeLoop(gatewayPid: number, write: Write) {
  await writeFor(20, WARM_UP_MS, write);
  return cpuReport(await cpuUse(gatewayPid, () => writeFor(20, MEASURED_MS, write)));
}

/** Each prompt as eight mutations to `origin`'s gateway, by 20 clients: prompt -> 3 versions -> 3 scores -> best head. */
export function eightMutations(userIds: string[], origin = base): Write {
  const tokens = Array.from({ length: 20 }, (_, i) => tokenFor("app_user", userIds[i % userIds.length]));
  return async (i) => {
    const token = tokens[i];
    const prompt = await graphql(token, "mutation($t: String!) { createPrompt(input: { prompt: { text: $t } }) { prompt { rowId } } }", { t: `bench prompt ${i}` }, origin);
    const promptId = prompt.createPrompt.prompt.rowId;
    let best: { id: string; total: number } | undefined;
    for (const source of ["syntax", "structure", "domain"]) {
      const version = await graphql(token, "mutation($p: BigInt!, $s: String!) { createPromptVersion(input: { promptVersion: { promptId: $p, text: \"improved\", source: $s } }) { promptVersion { rowId } } }", { p: promptId, s: source }, origin);
      const versionId = version.createPromptVersion.promptVersion.rowId;
      const value = Math.round(Math.random() * 100) / 10;
      await graphql(token, "mutation($v: BigInt!, $x: BigFloat!) { createJudgeScore(input: { judgeScore: { promptVersionId: $v, clarity: $x, specificity: $x, actionability: $x, structure: $x, contextUse: $x } }) { clientMutationId } }", { v: versionId, x: String(value) }, origin);
      if (!best || value > best.total) best = { id: versionId, total: value };
    }
    await graphql(token, "mutation($v: BigInt!) { setBestHead(input: { promptVersionId: $v }) { clientMutationId } }", { v: best!.id }, origin);
  };
}

export const RUN_MUTATION = "mutation($run: JSON!) { recordRun(input: { run: $run }) { result } }";

/** The same prompt as eightMutations (3 versions, 3 scores, best head) as one recordRun per prompt. */
export function oneRecordRun(userIds: string[]): Write {
  const tokens = Array.from({ length: 20 }, (_, i) => tokenFor("app_user", userIds[i % userIds.length]));
  return async (i) => {
    const values = [0, 1, 2].map(() => Math.round(Math.random() * 100) / 10);
    const versions = ["syntax", "structure", "domain"].map((agent, v) => {
      const x = values[v];
      return { agent, text: "improved", scores: { clarity: x, specificity: x, actionability: x, structure: x, context_use: x } };
    });
    await graphql(tokens[i], RUN_MUTATION, { run: { prompt: `bench prompt ${i}`, versions, best_version: values.indexOf(Math.max(...values)) } });
  };
}
