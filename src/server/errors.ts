// What a client may learn from a failure. The database's own SQLSTATEs (class PR)
// and constraint violations (class 23) carry a stable code; everything else is
// masked and logged with the request, so no SQL text or stack trace leaves the process.
import { randomBytes } from "node:crypto";
import type { ErrorRequestHandler, Response } from "express";
import pg from "pg";
import { recordFailure } from "./request-log.ts";

/** Request bodies beyond this are refused (REST and GraphQL alike). */
export const MAX_BODY_BYTES = 100_000;

export interface PublicError {
  status: number;
  code: string;
  message: string;
  /** Sent as Retry-After (REST) and extensions.retryAfterSeconds (GraphQL). */
  retryAfterSeconds?: number;
}

/** A failure whose code and message are meant for the client. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly retryAfterSeconds?: number;
  constructor(status: number, code: string, message: string, retryAfterSeconds?: number) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** A request cut off by the gateway's shutdown (its query cancelled, or still unanswered when the grace is over). */
export const SHUTTING_DOWN: PublicError = { status: 503, code: "SHUTTING_DOWN", message: "The server is restarting; try again.", retryAfterSeconds: 1 };

/** No database connection came free in time: the request did no work, and may be retried. */
export function serverBusy(retryAfterSeconds: number): HttpError {
  return new HttpError(503, "SERVER_BUSY", `The server is busy; try again in ${retryAfterSeconds} s.`, retryAfterSeconds);
}

const PROJECT_STATUS: Record<string, number> = {
  PRCRD: 401, // wrong credentials
  PRLGN: 401, // sign-in required
  PRNFD: 404,
  PRTKN: 409, // username taken
  PRRTL: 429, // export rate limit
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

/** The client's view of a database error, or undefined when it must be masked. */
export function publicDatabaseError(error: unknown): PublicError | undefined {
  if (!(error instanceof pg.DatabaseError) || !error.code) return undefined;
  const { code } = error;
  if (code.startsWith("PR")) return { status: PROJECT_STATUS[code] ?? 400, code, message: error.message };
  if (code.startsWith("23")) {
    return { status: code === "23502" || code === "23514" ? 400 : 409, code, message: constraintMessage(error) };
  }
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

export function sendError(res: Response, error: PublicError): void {
  if (error.retryAfterSeconds !== undefined) res.set("Retry-After", String(error.retryAfterSeconds));
  res.status(error.status).json({ success: false, error: { code: error.code, message: error.message } });
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
