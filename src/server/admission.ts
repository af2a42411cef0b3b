// One caller cannot take the whole gateway: each signed-in user (or, when
// anonymous, each client address) may have CALLER_MAX_CONCURRENT requests in
// flight; one more is answered 429 TOO_MANY_CONCURRENT_REQUESTS with
// Retry-After at once, before it takes a database connection.
import type { RequestHandler } from "express";
import type { Metrics } from "../metrics.ts";
import { callerOf } from "./caller.ts";
import { sendError } from "./errors.ts";

export function callerConcurrency(maxConcurrent: number, metrics: Metrics): RequestHandler {
  const inFlight = new Map<string, number>();
  return (req, res, next) => {
    const caller = callerOf(req);
    const key = caller ? `user ${caller.userId}` : `address ${req.socket.remoteAddress}`;
    const running = inFlight.get(key) ?? 0;
    if (running >= maxConcurrent) {
      metrics.callerLimited.inc();
      sendError(res, {
        status: 429,
        code: "TOO_MANY_CONCURRENT_REQUESTS",
        message: `At most ${maxConcurrent} requests at once per caller; wait for an answer before sending more.`,
        retryAfterSeconds: 1,
      });
      return;
    }
    inFlight.set(key, running + 1);
    res.once("close", () => {
      const left = inFlight.get(key)! - 1;
      if (left) inFlight.set(key, left);
      else inFlight.delete(key);
    });
    next();
  };
}
