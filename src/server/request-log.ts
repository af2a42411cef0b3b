// One log line and one duration sample per HTTP request, under a request id:
// the caller's X-Request-Id when it is sane, a new UUID otherwise. The id is
// sent back in X-Request-Id, set in the request's transactions (application_name
// and prompter.request_id, which an export records for the worker's log lines),
// and added to every line logged while the request runs.
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import type { Request, RequestHandler, Response, Router } from "express";
import type { Log } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { callerOf } from "./caller.ts";

const SANE_REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
// Routes not declared to express; any other unmatched path is "other", so
// arbitrary paths cannot multiply the metric's series.
const GRAFSERV_ROUTES = ["/graphql", "/graphiql"];

const requestIds = new AsyncLocalStorage<string>();

/** The id of the request being handled, wherever in its handling this runs. */
export function currentRequestId(): string | undefined {
  return requestIds.getStore();
}

export function requestIdOf(req: Request): string {
  return req.res!.locals.requestId;
}

/** What the error handler leaves for the request's log line. */
export interface RequestFailure {
  errorId: string;
  err: unknown;
}

export function recordFailure(res: Response, failure: RequestFailure): void {
  res.locals.failure = failure;
}

/** Mounted in front of a router, so its routes are labelled with their full path. */
export const rememberMountPath: RequestHandler = (req, res, next) => {
  res.locals.mountPath = req.baseUrl;
  next();
};

/**
 * The routes of routers mounted after the request log: a request answered
 * before express routed it (a refused token) is labelled with the route its
 * path leads to, not "other".
 */
export class DeclaredRoutes {
  private readonly routes: { label: string; pattern: RegExp }[] = [];

  /** Every route declared on `router` (paths with ":name" parameters), as mounted at `mountPath`. */
  add(mountPath: string, router: Router): void {
    for (const layer of router.stack) {
      if (!layer.route) continue;
      const label = `${mountPath}${layer.route.path}`;
      const pattern = label.split(/(:\w+)/).map((part) => (part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))).join("");
      this.routes.push({ label, pattern: new RegExp(`^${pattern}/?$`) });
    }
  }

  labelOf(path: string): string | undefined {
    return this.routes.find((route) => route.pattern.test(path))?.label;
  }
}

function routeOf(req: Request, res: Response, declared: DeclaredRoutes): string {
  if (req.route) return `${res.locals.mountPath ?? ""}${req.route.path}`;
  const path = req.originalUrl.split("?")[0];
  return GRAFSERV_ROUTES.includes(path) ? path : (declared.labelOf(path) ?? "other");
}

export function requestLog(log: Log, metrics: Metrics, declared = new DeclaredRoutes()): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const incoming = req.get("x-request-id");
    const requestId = incoming && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.locals.requestId = requestId;
    res.set("X-Request-Id", requestId);
    res.once("close", () => {
      const seconds = (performance.now() - started) / 1000;
      const route = routeOf(req, res, declared);
      const status = res.statusCode;
      metrics.httpRequestDuration.observe({ method: req.method, route, status: String(status) }, seconds);
      const fields = {
        requestId,
        method: req.method,
        route,
        path: req.originalUrl.split("?")[0],
        status,
        durationMs: Math.round(seconds * 10_000) / 10,
        userId: callerOf(req)?.userId,
        // The client went away before the answer was complete.
        aborted: res.writableFinished ? undefined : true,
        ...(res.locals.failure as RequestFailure | undefined),
      };
      log[status >= 500 || fields.errorId ? "error" : "info"](fields, "request");
    });
    requestIds.run(requestId, next);
  };
}
