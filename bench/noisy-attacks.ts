// More of user A's attacks for the noisy-neighbour section (issue 29), run
// alongside run.ts's own while B is measured, and what B and the gateway feel:
//   - 15 aliases of a page whose size is a variable's default, sent without variables;
//   - wide rows: 6 aliases of first:1000 over 1,000 of A's versions of 95 KB each;
//   - 15 aggregate aliases (distinctCount of text over a filtered page each);
//   - 60 slow bodies (one byte every 5 s) sent with a revoked token of B's;
//   - 5,000 sockets trickling a header line every 10 s, from two addresses (slow-sockets.ts).
// A's clients come from loopback addresses of their own (127.0.0.3 and up), as
// they would from another machine; B signs in from 127.0.0.2 twice a second.
// Measured: B's sign-in latency (before and during, with when the slowest came),
// the gateway's event-loop delay and open file descriptors against their limit,
// and what each attack got.
// BENCH_NOISY_ATTACKS=slow_bodies,slow_sockets (any of variable_defaults,
// wide_rows, aggregates, slow_bodies, slow_sockets; or none, or all) runs only those,
// to tell which attack costs B what.
import http from "node:http";
import { spawn } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { readdir, readFile } from "node:fs/promises";
import type pg from "pg";
import { signToken } from "../src/server/auth.ts";

export interface NoisyAttackOptions {
  port: number;
  pool: pg.Pool;
  gatewayPid: number;
  attackerId: string;
  attackerToken: string;
  victimId: string;
  secret: string;
}

const aliases = (count: number, field: (i: number) => string) => Array.from({ length: count }, (_, i) => `a${i}: ${field(i)}`).join(" ");
const QUERIES = {
  variable_defaults: `query ($n: Int = 1000) { ${aliases(15, () => "allPromptVersions(first: $n) { nodes { text } }")} }`,
  wide_rows: `{ ${aliases(6, () => "allPromptVersions(first: 1000) { nodes { text } }")} }`,
  aggregates: `{ ${aliases(15, (i) => `allPromptVersions(first: 1, filter: { rowId: { greaterThan: "${i}" } }) { aggregates { distinctCount { text explanation } } }`)} }`,
};
const ATTACKS = [...Object.keys(QUERIES), "slow_bodies", "slow_sockets"];
const chosenNames = process.env.BENCH_NOISY_ATTACKS ?? "all";
const CHOSEN = chosenNames === "all" ? ATTACKS : chosenNames === "none" ? [] : chosenNames.split(",");
const unknownAttack = CHOSEN.find((attack) => !ATTACKS.includes(attack));
if (unknownAttack) throw new Error(`BENCH_NOISY_ATTACKS: no attack ${unknownAttack}; the attacks are ${ATTACKS.join(", ")}`);
const WIDE_ROWS = 1000;
const WIDE_ROW_BYTES = 95_000;
const SLOW_BODIES = 60;
const SLOW_SOCKETS = 5000;
const SLOW_SOCKET_ADDRESSES = ["127.0.1.1", "127.0.1.2"];
const VICTIM_ADDRESS = "127.0.0.2";
const VICTIM_PASSWORD = "bench-victim-password";

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] * 10) / 10 : null;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A POST of JSON from `localAddress`; the answer's status, error code and size (its body is not kept). */
function post(port: number, localAddress: string, path: string, body: string, token?: string) {
  return new Promise<{ status: number; code?: string; bytes: number }>((resolve) => {
    const request = http.request({
      host: "127.0.0.1", port, localAddress, path, method: "POST", agent: false,
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    }, (response) => {
      let bytes = 0;
      let head = "";
      response.on("data", (chunk: Buffer) => {
        if (head.length < 2000) head += chunk.toString();
        bytes += chunk.length;
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, code: /"code":"(\w+)"/.exec(head)?.[1], bytes }));
      response.on("error", () => resolve({ status: 0, bytes }));
    });
    request.on("error", () => resolve({ status: 0, bytes: 0 }));
    request.end(body);
  });
}

/** B's own sign-ins, twice a second, until `until()`; their latencies in ms. */
async function victimSignIns(port: number, username: string, until: () => boolean) {
  const latencies: number[] = [];
  const slowest: { at_s: number; ms: number }[] = [];
  const started = performance.now();
  let failed = 0;
  const body = JSON.stringify({ query: `mutation { authenticate(input: { username: "${username}", password: "${VICTIM_PASSWORD}" }) { result } }` });
  while (!until()) {
    const sent = performance.now();
    const answer = await post(port, VICTIM_ADDRESS, "/graphql", body);
    latencies.push(performance.now() - sent);
    slowest.push({ at_s: Math.round(sent - started) / 1000, ms: Math.round(performance.now() - sent) });
    if (answer.status !== 200 || answer.code) failed++;
    await sleep(500);
  }
  // When the slowest came (seconds since B began) tells a stall at an attack's start from a steady cost.
  slowest.sort((a, b) => b.ms - a.ms);
  return { p50_ms: quantile(latencies, 0.5), p99_ms: quantile(latencies, 0.99), sign_ins: latencies.length, failed, slowest: slowest.slice(0, 3) };
}

/** The slow sockets, in a child process (slow-sockets.ts); stop() answers what it saw. */
function slowSockets(port: number, count: number) {
  const child = spawn(process.execPath, [fileURLToPath(new URL("./slow-sockets.ts", import.meta.url)), String(port), String(count), SLOW_SOCKET_ADDRESSES.join(",")],
    { stdio: ["pipe", "pipe", "inherit"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  process.once("exit", () => child.kill());
  return {
    async stop() {
      child.stdin.write("stop\n");
      await exited;
      return JSON.parse(output);
    },
  };
}

/** A POST /api/runs whose body comes one byte every 5 s; reopened when the server answers. */
async function slowBody(port: number, token: string, stopped: () => boolean, answers: Record<string, number>) {
  while (!stopped()) {
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect({ port, host: "127.0.0.1", localAddress: "127.0.0.4" });
      let received = "";
      let timer: NodeJS.Timeout | undefined;
      const end = () => {
        clearInterval(timer);
        clearInterval(watch);
        socket.destroy();
        resolve(/^HTTP\/1.1 (\d+)[^]*?"code":"(\w+)"/.exec(received)?.slice(1).join(" ") ?? (received ? received.slice(0, 12) : "closed"));
      };
      socket.on("connect", () => {
        socket.write(`POST /api/runs HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`);
        timer = setInterval(() => socket.write(" "), 5000);
      });
      socket.on("data", (chunk) => (received += chunk.toString()));
      socket.on("error", end);
      socket.on("close", end);
      const watch = setInterval(() => stopped() && end(), 500);
    });
    answers[answer] = (answers[answer] ?? 0) + 1;
  }
}

/** CPU seconds the process has used (user and system). */
/**
 * The gateway's event-loop delay since the last scrape (prom-client resets its
 * histogram on each): a stall there delays every request, B's sign-ins among them.
 */
async function eventLoopLag(port: number): Promise<{ p99_ms: number; max_ms: number }> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((response) => response.text());
  const seconds = (name: string) => Number(new RegExp(`^${name} ([0-9.e+-]+)`, "m").exec(text)?.[1] ?? NaN);
  return { p99_ms: Math.round(seconds("nodejs_eventloop_lag_p99_seconds") * 1000), max_ms: Math.round(seconds("nodejs_eventloop_lag_max_seconds") * 1000) };
}

async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function openFiles(pid: number): Promise<{ open: number; limit: number }> {
  const limits = await readFile(`/proc/${pid}/limits`, "utf8");
  return { open: (await readdir(`/proc/${pid}/fd`)).length, limit: Number(/^Max open files\s+(\d+)/m.exec(limits)![1]) };
}

/**
 * Gives A's first 1,000 versions (those its pages start with, run.ts's heavy
 * reads' too) 95 KB texts, for the wide-rows attack, and B a password.
 */
async function prepare(options: NoisyAttackOptions): Promise<string> {
  if (CHOSEN.includes("wide_rows")) await options.pool.query(
    `update app_public.prompt_versions v set text = repeat(md5(v.id::text), ${Math.ceil(WIDE_ROW_BYTES / 32)})
      where v.id in (select id from app_public.prompt_versions where user_id = $1 order by id limit ${WIDE_ROWS})`, [options.attackerId]);
  const { rows: [victim] } = await options.pool.query<{ username: string }>("select username from app_public.users where id = $1", [options.victimId]);
  // Not reset_password: it would revoke the token run.ts measures B with.
  await options.pool.query(
    `insert into app_private.user_secrets (user_id, password_hash) values ($1, app_private.password_hash($2))
     on conflict (user_id) do update set password_hash = excluded.password_hash`, [options.victimId, VICTIM_PASSWORD]);
  return victim.username;
}

/**
 * Measures B's sign-ins for a few seconds, then starts A's attacks; stop() ends
 * them and answers what was measured.
 */
export async function startNoisyAttacks(options: NoisyAttackOptions) {
  const victimUsername = await prepare(options);
  const baselineEnds = performance.now() + 5000;
  const signInBaseline = await victimSignIns(options.port, victimUsername, () => performance.now() > baselineEnds);

  await eventLoopLag(options.port);
  let stopped = false;
  const isStopped = () => stopped;
  const attackStarted = { at: performance.now(), gatewayCpu: await cpuSeconds(options.gatewayPid) };
  const queries = Object.fromEntries(Object.keys(QUERIES).map((name) => [name, { answered: 0, refused: {} as Record<string, number>, failed: 0, max_bytes: 0 }]));
  const queryLoops = Object.entries(QUERIES).filter(([name]) => CHOSEN.includes(name)).flatMap(([name, query], kind) => Array.from({ length: 2 }, async () => {
    const tally = queries[name];
    const body = JSON.stringify({ query });
    while (!stopped) {
      const answer = await post(options.port, `127.0.0.${5 + kind}`, "/graphql", body, options.attackerToken);
      tally.max_bytes = Math.max(tally.max_bytes, answer.bytes);
      if (answer.status === 0) tally.failed++;
      else if (answer.code) tally.refused[answer.code] = (tally.refused[answer.code] ?? 0) + 1;
      else tally.answered++;
    }
  }));
  // A token of B's from a generation that is no longer B's, as after signOutEverywhere.
  const revoked = signToken({ role: "app_user", user_id: options.victimId, exp: Math.floor(Date.now() / 1000) + 3600, token_generation: -1 }, options.secret);
  const slowBodyAnswers: Record<string, number> = {};
  const slowBodies = Array.from({ length: CHOSEN.includes("slow_bodies") ? SLOW_BODIES : 0 }, () => slowBody(options.port, revoked, isStopped, slowBodyAnswers));
  const sockets = CHOSEN.includes("slow_sockets") ? slowSockets(options.port, SLOW_SOCKETS) : undefined;
  const descriptors = { peak: 0, limit: 0 };
  const sampling = (async () => {
    while (!stopped) {
      const { open, limit } = await openFiles(options.gatewayPid).catch(() => ({ open: 0, limit: 0 }));
      descriptors.peak = Math.max(descriptors.peak, open);
      descriptors.limit = limit || descriptors.limit;
      await sleep(250);
    }
  })();
  const signInAttack = victimSignIns(options.port, victimUsername, isStopped);

  return {
    async stop() {
      stopped = true;
      const gatewayCpuShare = (await cpuSeconds(options.gatewayPid) - attackStarted.gatewayCpu) / ((performance.now() - attackStarted.at) / 1000);
      const victimSignIn = await signInAttack;
      const lag = await eventLoopLag(options.port);
      const [socketsSeen] = await Promise.all([sockets?.stop(), ...queryLoops, ...slowBodies, sampling]);
      return {
        attacks: CHOSEN,
        victim_sign_in: { baseline: signInBaseline, attack: victimSignIn },
        gateway_cpu_cores_used: Math.round(gatewayCpuShare * 100) / 100,
        gateway_event_loop_lag: lag,
        gateway_fds: { peak: descriptors.peak, limit: descriptors.limit, share: Math.round((descriptors.peak / descriptors.limit) * 1000) / 1000 },
        queries,
        slow_bodies: { clients: SLOW_BODIES, answers: slowBodyAnswers },
        slow_sockets: socketsSeen ?? null,
      };
    },
  };
}
