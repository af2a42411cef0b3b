// What client connections may take of the process. Each open socket holds a
// file descriptor: clients that open many, or trickle their headers, or keep
// idle connections, would otherwise exhaust them and every other request
// would fail. So headers must arrive within HEADERS_TIMEOUT (the body within
// BODY_TIMEOUT, see request-body.ts), an idle kept-alive connection closes
// after KEEP_ALIVE_TIMEOUT, and open connections are capped: MAX_CONNECTIONS
// in all, MAX_CONNECTIONS_PER_ADDRESS from one address. A trusted proxy's
// connections (TRUST_PROXY) count only in all: behind it, many clients share
// its address, and the proxy caps them per client (README, "Behind a proxy").
import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import type { Socket } from "node:net";
import type { Config } from "../config.ts";
import type { Log } from "../log.ts";
import type { Metrics } from "../metrics.ts";

/** How often Node checks the header and request timeouts (its default, 30 s, would let them run three times over). */
const TIMEOUT_CHECK_MS = 1000;

/** The options of createServer that bound a connection's time. */
export function connectionTimeouts(limits: Config["connectionLimits"]) {
  const headersTimeout = limits.headersTimeoutSeconds * 1000;
  return {
    headersTimeout,
    // A backstop behind the body deadline, which answers with a code first.
    requestTimeout: headersTimeout + limits.bodyTimeoutSeconds * 1000 + 2000,
    keepAliveTimeout: limits.keepAliveTimeoutSeconds * 1000,
    connectionsCheckingInterval: TIMEOUT_CHECK_MS,
  };
}

/** Caps the server's open connections, in all and per address (except the trusted proxies'). */
export function capConnections(
  server: Server,
  limits: Config["connectionLimits"],
  isTrustedProxy: (address: string) => boolean,
  metrics: Metrics,
  log: Log,
): void {
  server.maxConnections = limits.maxConnections;
  metrics.connectionsRefused.inc({ reason: "total" }, 0);
  metrics.connectionsRefused.inc({ reason: "address" }, 0);
  server.on("drop", () => metrics.connectionsRefused.inc({ reason: "total" }));
  const descriptors = openFilesLimit();
  if (descriptors !== undefined && limits.maxConnections > descriptors / 2) {
    log.warn({ maxConnections: limits.maxConnections, openFilesLimit: descriptors },
      "MAX_CONNECTIONS is more than half the process's open files limit (ulimit -n): the database, export files and logs need the rest");
  }
  const open = new Map<string, number>();
  server.on("connection", (socket: Socket) => {
    const address = socket.remoteAddress;
    if (address === undefined || isTrustedProxy(address)) return;
    const count = (open.get(address) ?? 0) + 1;
    if (count > limits.maxConnectionsPerAddress) {
      metrics.connectionsRefused.inc({ reason: "address" });
      socket.destroy();
      return;
    }
    open.set(address, count);
    socket.once("close", () => {
      const left = open.get(address)! - 1;
      if (left) open.set(address, left);
      else open.delete(address);
    });
  });
}

/** The soft limit on open files (Linux), or undefined elsewhere. */
function openFilesLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return line ? Number(line[1]) : undefined;
  } catch {
    return undefined;
  }
}
