// One caller cannot take the whole gateway: each signed-in user (or, when
// anonymous, each client address; see admissionKey) may have CALLER_MAX_CONCURRENT requests in
// flight. One more waits its turn, at most CALLER_MAX_WAIT and behind at most
// CALLER_MAX_QUEUED others of the same caller, before it takes a database
// connection; past either bound it is answered 429 TOO_MANY_CONCURRENT_REQUESTS
// with Retry-After. Waiting instead of refusing at once matters: a client that
// retries a refusal without pause would otherwise keep the gateway busy
// answering it, at the expense of everyone else.
import type { RequestHandler, Response } from "express";
import type { Metrics } from "../metrics.ts";
import { admissionKey } from "./caller.ts";
import { sendError } from "./errors.ts";

export interface CallerLimits {
  maxConcurrent: number;
  maxQueued: number;
  maxWaitSeconds: number;
}

/**
 * Capacity per key, taken in units (one per request, or an operation's
 * estimated cost), with a FIFO queue of bounded length and wait: the first in
 * line goes first, so a large request is not starved by small ones.
 */
export class Lanes {
  private readonly inUse = new Map<string, number>();
  private readonly queues = new Map<string, { units: number; start(): void }[]>();
  private readonly capacity: number;
  private readonly maxQueued: number;
  private readonly maxWaitMs: number;

  constructor(capacity: number, maxQueued: number, maxWaitSeconds: number) {
    this.capacity = capacity;
    this.maxQueued = maxQueued;
    this.maxWaitMs = maxWaitSeconds * 1000;
  }

  /** A release function, or undefined when the request waited too long or too many wait already. */
  async acquire(key: string, units: number, gone: AbortSignal): Promise<(() => void) | undefined> {
    const wanted = Math.min(units, this.capacity);
    const queue = this.queues.get(key) ?? [];
    if (!queue.length && (this.inUse.get(key) ?? 0) + wanted <= this.capacity) {
      this.inUse.set(key, (this.inUse.get(key) ?? 0) + wanted);
      return this.releaser(key, wanted);
    }
    if (queue.length >= this.maxQueued || gone.aborted) return undefined;
    this.queues.set(key, queue);
    const started = await new Promise<boolean>((resolve) => {
      const waiter = {
        units: wanted,
        start: () => {
          clear();
          resolve(true);
        },
      };
      const leave = () => {
        clear();
        queue.splice(queue.indexOf(waiter), 1);
        if (!queue.length && this.queues.get(key) === queue) this.queues.delete(key);
        this.startWaiting(key); // the one behind may fit now
        resolve(false);
      };
      const timer = setTimeout(leave, this.maxWaitMs);
      gone.addEventListener("abort", leave, { once: true });
      const clear = () => {
        clearTimeout(timer);
        gone.removeEventListener("abort", leave);
      };
      queue.push(waiter);
    });
    return started ? this.releaser(key, wanted) : undefined;
  }

  private releaser(key: string, units: number): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.inUse.get(key)! - units;
      if (left) this.inUse.set(key, left);
      else this.inUse.delete(key);
      this.startWaiting(key);
    };
  }

  private startWaiting(key: string): void {
    const queue = this.queues.get(key);
    while (queue?.length && (this.inUse.get(key) ?? 0) + queue[0].units <= this.capacity) {
      const waiter = queue.shift()!;
      this.inUse.set(key, (this.inUse.get(key) ?? 0) + waiter.units);
      waiter.start();
    }
    if (queue && !queue.length) this.queues.delete(key);
  }
}

// The reason every gone signal aborts with: abort() without one builds a
// DOMException, stack trace included, and this happens at the end of every request.
const CLIENT_GONE = new Error("The client went away, or its answer was sent.");

/** Aborts when the client goes away (or the answer is sent). */
export function goneSignal(res: Response): AbortSignal {
  const gone = new AbortController();
  if (res.closed) gone.abort(CLIENT_GONE);
  else res.once("close", () => gone.abort(CLIENT_GONE));
  return gone.signal;
}

export function callerConcurrency(limits: CallerLimits, metrics: Metrics): RequestHandler {
  const lanes = new Lanes(limits.maxConcurrent, limits.maxQueued, limits.maxWaitSeconds);
  return (req, res, next) => {
    lanes.acquire(admissionKey(req), 1, goneSignal(res)).then((release) => {
      if (!release) {
        if (res.closed) return;
        metrics.callerLimited.inc();
        sendError(res, {
          status: 429,
          code: "TOO_MANY_CONCURRENT_REQUESTS",
          message: `At most ${limits.maxConcurrent} requests at once per caller; wait for an answer before sending more.`,
          retryAfterSeconds: 1,
        });
        return;
      }
      // A client that went away meanwhile (say, while its request was being
      // authenticated): its "close" has been emitted already and would never release the slot.
      if (res.closed) return release();
      res.once("close", release);
      next();
    }, next);
  };
}
