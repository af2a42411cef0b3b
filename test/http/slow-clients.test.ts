// Clients that hold what others need: slow bodies sent with a revoked token
// (they held their user's admission slots), headers trickled a line at a time
// and idle connections (they held file descriptors), and many connections
// from one address. Each is bounded, and another caller is still served.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import net from "node:net";
import { useTestDatabase } from "../support/db.ts";
import { graphql, startServer, type RunningServer } from "../support/server.ts";

const db = useTestDatabase();
let server: RunningServer;
let port: number;

beforeAll(async () => {
  server = await startServer({
    databaseUrl: db.url,
    env: {
      ALLOW_REGISTRATION: "true", CALLER_MAX_CONCURRENT: "2", CALLER_MAX_QUEUED: "0", EXPORT_WAIT_SECONDS: "7",
      BODY_TIMEOUT: "2", HEADERS_TIMEOUT: "2", KEEP_ALIVE_TIMEOUT: "1", MAX_CONNECTIONS: "40", MAX_CONNECTIONS_PER_ADDRESS: "10",
    },
  });
  port = Number(new URL(server.baseUrl).port);
});
afterAll(() => server?.stop());

const sockets: net.Socket[] = [];
afterAll(() => sockets.forEach((socket) => socket.destroy()));

/** A connection from `localAddress` (any of 127.0.0.0/8 reaches the server); resolves once connected. */
function connect(localAddress = "127.0.0.1"): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", localAddress }, () => resolve(socket));
    socket.once("error", reject);
    socket.on("error", () => {});
    sockets.push(socket);
  });
}

/** Everything the server sent until it closed the connection, and how long that took. */
function untilClosed(socket: net.Socket): Promise<{ received: string; seconds: number }> {
  const started = performance.now();
  let received = "";
  socket.on("data", (chunk) => (received += chunk.toString()));
  return new Promise((resolve) => socket.once("close", () => resolve({ received, seconds: (performance.now() - started) / 1000 })));
}

const register = async (username: string) =>
  (await graphql(server, "mutation ($u: String!) { register(input: { username: $u, password: \"long-enough-password\" }) { result } }", { u: username })).data!.register.result as string;
const effectiveness = (token: string, localAddress?: string) => new Promise<number>((resolve, reject) => {
  // Through a socket of its own, so the address it comes from can be chosen.
  void connect(localAddress).then((socket) => {
    const answer = untilClosed(socket);
    socket.write(`GET /api/agents/effectiveness HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
    void answer.then(({ received }) => resolve(Number(/^HTTP\/1.1 (\d+)/.exec(received)?.[1] ?? 0)), reject);
  }, reject);
});

describe("slow bodies", () => {
  it("hold none of the user's slots (sent with a revoked token or its own), and are dropped with 408 BODY_TIMEOUT", { timeout: 30_000 }, async () => {
    const old = await register("alice");
    await graphql(server, "mutation { signOutEverywhere(input: {}) { clientMutationId } }", {}, old);
    const fresh = (await graphql(server, `mutation { authenticate(input: { username: "alice", password: "long-enough-password" }) { result } }`)).data!.authenticate.result as string;
    expect(await effectiveness(fresh)).toBe(200); // its session is known good from here on
    // Six runs with the old token and three with the new, each with one byte of its body sent (more than CALLER_MAX_CONCURRENT).
    const slow = await Promise.all([...Array(6).fill(old), ...Array(3).fill(fresh)].map(async (token: string, i) => {
      const socket = await connect(`127.0.0.${2 + (i % 2)}`);
      socket.write(`POST /api/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`);
      return untilClosed(socket);
    }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await effectiveness(fresh));
    expect(answers).toEqual(Array(6).fill(200));
    for (const { received } of await Promise.all(slow)) {
      expect(received).toMatch(/^HTTP\/1.1 408 /);
      expect(received).toMatch(/"code":"BODY_TIMEOUT"/);
    }
    const { rows } = await db.pool.query("select count(*)::int as n from app_public.prompts");
    expect(rows[0].n).toBe(0);
  });

  it("a request whose body is in (or that has none) may take longer than BODY_TIMEOUT", { timeout: 30_000 }, async () => {
    const token = await register("carla");
    // No worker runs here: the export stays queued, and the request waits EXPORT_WAIT_SECONDS (7 s: past BODY_TIMEOUT, and past the headers and body timeouts together) for it.
    // With a small body, and without Content-Length (as a GET has no body) once the token is known (verified at once).
    for (const body of ["Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", ""]) {
      const socket = await connect("127.0.0.9");
      const answer = untilClosed(socket);
      socket.write(`POST /api/storage/export-all?wait=true HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${token}\r\n${body || "\r\n"}`);
      // Answered when the wait is over, not cut off (408, or a closed connection).
      expect((await answer).received).toMatch(/^HTTP\/1.1 202 /);
    }
  });

  it("a revoked token's requests wait in a lane of their own, not in the user's", { timeout: 30_000 }, async () => {
    const old = await register("bruno");
    await graphql(server, "mutation { signOutEverywhere(input: {}) { clientMutationId } }", {}, old);
    const fresh = (await graphql(server, `mutation { authenticate(input: { username: "bruno", password: "long-enough-password" }) { result } }`)).data!.authenticate.result as string;
    expect(await effectiveness(fresh)).toBe(200); // its session is known good from here on
    expect(await effectiveness(old)).toBe(401); // and this one's known to have ended
    const flood = Array.from({ length: 30 }, (_, i) => effectiveness(old, `127.0.1.${i % 3}`));
    const own = Array.from({ length: 2 }, () => effectiveness(fresh, "127.0.2.1"));
    const floodAnswers = await Promise.all(flood);
    expect(await Promise.all(own)).toEqual([200, 200]);
    expect(floodAnswers.filter((status) => status !== 401 && status !== 429)).toEqual([]);
  });
});

describe("connections", () => {
  it("headers trickled a line at a time are cut off after HEADERS_TIMEOUT", { timeout: 30_000 }, async () => {
    const socket = await connect("127.0.3.1");
    const closed = untilClosed(socket);
    socket.write("GET /healthz HTTP/1.1\r\n");
    const trickle = setInterval(() => socket.writable && socket.write(`X-Line-${Date.now()}: y\r\n`), 500);
    const { seconds } = await closed;
    clearInterval(trickle);
    // 2 s, checked every second; Node's defaults (60 s, checked every 30 s) held them about 90 s.
    expect(seconds).toBeLessThan(6);
  });

  it("an idle kept-alive connection is closed after KEEP_ALIVE_TIMEOUT; one that never sends a byte after HEADERS_TIMEOUT", { timeout: 30_000 }, async () => {
    const kept = await connect("127.0.3.2");
    const keptClosed = untilClosed(kept);
    kept.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    const silent = await connect("127.0.3.3");
    const [keptAnswer, silentAnswer] = await Promise.all([keptClosed, untilClosed(silent)]);
    expect(keptAnswer.received).toMatch(/^HTTP\/1.1 200 /);
    expect(keptAnswer.seconds).toBeLessThan(4);
    expect(silentAnswer.seconds).toBeLessThan(6);
  });

  it("caps the connections from one address (MAX_CONNECTIONS_PER_ADDRESS), and in all (MAX_CONNECTIONS)", { timeout: 30_000 }, async () => {
    const fromOne = await Promise.all(Array.from({ length: 15 }, () => connect("127.0.4.1")));
    const states = await Promise.all(fromOne.map((socket) => Promise.race([
      untilClosed(socket).then(() => "closed"),
      new Promise((resolve) => setTimeout(() => resolve("open"), 500)),
    ])));
    expect(states.filter((state) => state === "open")).toHaveLength(10);
    // Another address is still served.
    expect(await effectiveness("not-a-token", "127.0.4.2")).toBe(401);
    // 10 open from 127.0.4.1, 30 more from three addresses: the 40th and beyond are dropped.
    const more = await Promise.all(Array.from({ length: 33 }, (_, i) => connect(`127.0.5.${i % 3}`)));
    const moreStates = await Promise.all(more.map((socket) => Promise.race([
      untilClosed(socket).then(() => "closed"),
      new Promise((resolve) => setTimeout(() => resolve("open"), 500)),
    ])));
    expect(moreStates.filter((state) => state === "open").length).toBeLessThanOrEqual(30);
    expect(moreStates.filter((state) => state === "closed").length).toBeGreaterThanOrEqual(3);
    [...fromOne, ...more].forEach((socket) => socket.destroy());
    await new Promise((resolve) => setTimeout(resolve, 200));
    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/prompter_gateway_connections_refused_total\{reason="total"\} [1-9]/);
    expect(metrics).toMatch(/prompter_gateway_connections_refused_total\{reason="address"\} [1-9]/);
  });
});
