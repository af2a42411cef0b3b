// What a client may learn from a failure. The database's own SQLSTATEs (classes PR, PA and PF)
// and constraint violations (class 23) carry a stable code; everything else is
// masked and logged with the request, so no SQL text or stack trace leaves the process.
import { randomBytes } from "node:crypto";
import type { ErrorRequestHandler, Response } from "express";
import pg from "pg";
import { graphqlMediaType } from "./graphql-answers.ts";
import { recordFailure } from "./request-log.ts";

/** Request bodies beyond this are refused (REST and GraphQL alike). */
export const MAX_BODY_BYTES = 100_000;

export interface PublicError {
  status: number;
  code: string;
  message: string;
  /** When trying again makes sense: Retry-After (REST), extensions.retryAfterSeconds (GraphQL). */
  retryAfterSeconds?: number;
  /** Headers the answer needs, such as Allow on a 405. */
  headers?: Record<string, string>;
}

/** How long a client is asked to wait while the database is unreachable: about what a restart takes. */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

const DATABASE_UNAVAILABLE: PublicError = {
  status: 503,
  code: "DATABASE_UNAVAILABLE",
  message: "The database is unavailable right now (restarting or unreachable); try again in a few seconds.",
  retryAfterSeconds: DATABASE_RETRY_AFTER_SECONDS,
};

// SQLSTATEs of a server going away or not taking connections: admin_shutdown,
// crash_shutdown, cannot_connect_now; class 08 is any connection exception.
const UNAVAILABLE_SQLSTATES = new Set(["57P01", "57P02", "57P03"]);
// Socket errors when connecting to, or talking with, a server that is down or cut off.
const UNAVAILABLE_SOCKET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"]);
// node-pg's own errors for a connection that ended under a query, or that broke earlier.
const UNAVAILABLE_MESSAGES = /^(Connection terminated|Client has encountered a connection error|Connection closed)/;

/** Whether the error means the database cannot be reached now (restart, failover, network), so retrying later will do. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && (UNAVAILABLE_SQLSTATES.has(code) || code.startsWith("08") || UNAVAILABLE_SOCKET_CODES.has(code))) return true;
  if (UNAVAILABLE_MESSAGES.test(error.message)) return true;
  // Connecting to a name with several addresses fails with all of their errors.
  if (error instanceof AggregateError) return error.errors.some(isDatabaseUnavailable);
  return error.cause !== undefined && isDatabaseUnavailable(error.cause);
}

/** A failure whose code and message are meant for the client. */
export class HttpError extends Error implements PublicError {
  readonly status: number;
  readonly code: string;
  readonly headers?: Record<string, string>;
  readonly retryAfterSeconds?: number;
  constructor(status: number, code: string, message: string, extra: Pick<PublicError, "headers" | "retryAfterSeconds"> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = extra.headers;
    this.retryAfterSeconds = extra.retryAfterSeconds;
  }
}

/** A request cut off by the gateway's shutdown (its query cancelled, or still unanswered when the grace is over). */
export const SHUTTING_DOWN: PublicError = { status: 503, code: "SHUTTING_DOWN", message: "The server is restarting; try again.", retryAfterSeconds: 1 };

/** No database connection came free in time: the request did no work, and may be retried. */
export function serverBusy(retryAfterSeconds: number): HttpError {
  return new HttpError(503, "SERVER_BUSY", `The server is busy; try again in ${retryAfterSeconds} s.`, { retryAfterSeconds });
}

/** Where the API's bearer tokens are valid, as RFC 6750 names it in WWW-Authenticate. */
const REALM = "prompter";
// RFC 6750 section 3.1: a request without credentials gets no error code.
// A token whose session ended in SQL (PRSES) is as invalid as a forged one: sign in again.
const BEARER_ERRORS: Record<string, string> = {
  INVALID_TOKEN: "invalid_token", TOKEN_EXPIRED: "invalid_token", TOKEN_ISSUED_IN_FUTURE: "invalid_token", PRSES: "invalid_token",
};

/** The WWW-Authenticate challenge every 401 carries. */
export function bearerChallenge(error: Pick<PublicError, "code" | "message">): string {
  const errorCode = BEARER_ERRORS[error.code];
  const quoted = (value: string) => `"${value.replace(/["\\]/g, "")}"`;
  return errorCode
    ? `Bearer realm=${quoted(REALM)}, error=${quoted(errorCode)}, error_description=${quoted(error.message)}`
    : `Bearer realm=${quoted(REALM)}`;
}

/**
 * A retryable error raised in SQL says how long to wait in its DETAIL, as
 * {"retryAfterSeconds": n}; anything else there is not for this.
 */
function retryAfterSecondsOf(error: pg.DatabaseError): number | undefined {
  if (!error.detail?.startsWith("{")) return undefined;
  try {
    const seconds = (JSON.parse(error.detail) as { retryAfterSeconds?: unknown }).retryAfterSeconds;
    return typeof seconds === "number" && Number.isFinite(seconds) && seconds >= 0 ? Math.ceil(seconds) : undefined;
  } catch {
    return undefined;
  }
}

const PROJECT_STATUS: Record<string, number> = {
  PRCRD: 401, // wrong credentials
  PRLGN: 401, // sign-in required
  PRSES: 401, // the token's session has ended (revoked, user disabled or removed)
  PRREG: 403, // registration is closed
  PRNFD: 404,
  PRTKN: 409, // username taken
  PRIDM: 409, // idempotency key reused for a different run
  PRRTL: 429, // export rate limit
  PFGLB: 403, // a global feed is an admin's
  PFORD: 409, // a feed's runs are written in order
  PRTHR: 429, // sign-in throttled
};

function constraintMessage(error: pg.DatabaseError): string {
  const name = `"${error.constraint ?? "unnamed"}"`;
  switch (error.code) {
    case "23502":
      return `A required value is missing (column "${error.column ?? "unknown"}").`;
    case "23503":
      return /^update or delete on/.test(error.message)
        ? `The row is still referenced by other rows (constraint ${name}).`
        : `The row referred to does not exist or is not yours (constraint ${name}).`;
    case "23505":
      return `A row with this value exists already (constraint ${name}).`;
    case "23514":
      return `A value is outside what is allowed (constraint ${name}).`;
    default:
      return `The change breaks a rule of the database (constraint ${name}).`;
  }
}

/** Input holding a NUL character or a lone UTF-16 surrogate, which text cannot store. */
export const BAD_UNICODE: PublicError = {
  status: 400,
  code: "BAD_UNICODE",
  message: "The input holds a NUL character (\\u0000) or a lone UTF-16 surrogate, which text cannot store.",
};

/** The client's view of a database error, or undefined when it must be masked. */
export function publicDatabaseError(error: unknown): PublicError | undefined {
  if (isDatabaseUnavailable(error)) return DATABASE_UNAVAILABLE;
  if (!(error instanceof pg.DatabaseError) || !error.code) return undefined;
  const { code } = error;
  // PR: the project's codes; PA: those of the agent analytics; PF: those of feeds.
  if (code.startsWith("PR") || code.startsWith("PA") || code.startsWith("PF")) {
    return { status: PROJECT_STATUS[code] ?? 400, code, message: error.message, retryAfterSeconds: retryAfterSecondsOf(error) };
  }
  if (code.startsWith("23")) {
    return { status: code === "23502" || code === "23514" ? 400 : 409, code, message: constraintMessage(error) };
  }
  // Text PostgreSQL cannot store (a NUL character), from a GraphQL literal: request bodies' JSON is checked before (request-body.ts).
  if (code === "22P05" || code === "22021") return BAD_UNICODE;
  // Row level security and grants: anonymous callers and other users' rows end here.
  if (code === "42501") return { status: 403, code, message: "Permission denied: sign in, or this is not yours." };
  // The transaction's statement_timeout, or the gateway cancelling its queries as it shuts down.
  if (code === "57014") {
    return /statement timeout/.test(error.message)
      ? { status: 503, code: "STATEMENT_TIMEOUT", message: "The request took longer than its time limit; ask for less (or request an export).", retryAfterSeconds: 1 }
      : SHUTTING_DOWN;
  }
  // lock_timeout: someone else holds what the request needed; it changed nothing.
  if (code === "55P03") return { status: 503, code: "LOCK_TIMEOUT", message: "Busy with another change to the same data; try again.", retryAfterSeconds: 1 };
  return undefined;
}

/** The headers an error answer carries besides its body. */
function errorHeaders(error: PublicError): Record<string, string> {
  return {
    ...error.headers,
    ...(error.retryAfterSeconds !== undefined ? { "Retry-After": String(error.retryAfterSeconds) } : {}),
    ...(error.status === 401 ? { "WWW-Authenticate": bearerChallenge(error) } : {}),
  };
}

/** Where GraphQL is served: errors there are answered as GraphQL responses, which GraphQL clients can read. */
export const GRAPHQL_PATH = "/graphql";

export function sendError(res: Response, error: PublicError): void {
  res.set(errorHeaders(error)).status(error.status);
  if (res.req.path === GRAPHQL_PATH) {
    const retry = error.retryAfterSeconds !== undefined ? { retryAfterSeconds: error.retryAfterSeconds } : {};
    res.type(graphqlMediaType(res.req)).send(JSON.stringify({ errors: [{ message: error.message, extensions: { code: error.code, ...retry } }] }));
    return;
  }
  res.json({ success: false, error: { code: error.code, message: error.message } });
}

// body-parser's failures, by their `type`.
const BODY_ERRORS: Record<string, PublicError> = {
  "entity.parse.failed": { status: 400, code: "BAD_JSON", message: "The request body is not valid JSON." },
  "entity.too.large": { status: 413, code: "BODY_TOO_LARGE", message: "The request body is too large." },
  "encoding.unsupported": { status: 415, code: "UNSUPPORTED_ENCODING", message: "The request body's encoding is not supported." },
  "charset.unsupported": { status: 415, code: "UNSUPPORTED_ENCODING", message: "The request body's charset is not supported." },
};

/** Answers every error; one the client may not see is masked, and its details go to the request's log line. */
export const errorHandler: ErrorRequestHandler = (error, _req, res, _next) => {
  const errorId = randomBytes(6).toString("hex");
  if (res.headersSent) {
    // Mid-answer (a download whose file read failed): the client can only learn that it broke off.
    recordFailure(res, { errorId, err: error });
    res.destroy();
    return;
  }
  const known = error instanceof HttpError ? error : (BODY_ERRORS[(error as { type?: string })?.type ?? ""] ?? publicDatabaseError(error));
  if (known) return sendError(res, known);
  recordFailure(res, { errorId, err: error });
  sendError(res, { status: 500, code: "INTERNAL", message: `Something went wrong (error id ${errorId}).` });
};
