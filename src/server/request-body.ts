// Request bodies, read before a request is admitted (admission.ts), so a
// client that sends its body slowly holds no slot while it does: it gets
// BODY_TIMEOUT to send all of it, then is answered 408 and disconnected. A
// JSON body must also be something PostgreSQL and the gateway can take as
// input: nested at most MAX_JSON_DEPTH deep (JSON.stringify and PostgreSQL's
// json parser recurse, and fail past a depth far below what JSON.parse accepts),
// and without NUL or lone surrogates (PostgreSQL's text and jsonb refuse them).
import express, { type RequestHandler } from "express";
import { BAD_UNICODE, HttpError, MAX_BODY_BYTES, sendError } from "./errors.ts";

/** Deeper than any document of the API (a run is 4 levels deep). */
const MAX_JSON_DEPTH = 64;

/** Answers 408 BODY_TIMEOUT, and closes the connection, when the body is not in within `timeoutMs`. */
function bodyDeadline(timeoutMs: number): RequestHandler {
  return (req, res, next) => {
    const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
    if (!hasBody || req.complete) return next();
    const timer = setTimeout(() => {
      // complete: all of it arrived (read or not); an answer under way: the handler did not need it.
      if (req.complete || res.headersSent) return;
      // The rest of the body would be read as the next request.
      res.set("Connection", "close");
      sendError(res, { status: 408, code: "BODY_TIMEOUT", message: `The request body did not arrive within ${timeoutMs / 1000} s; send it at once.` });
      res.once("finish", () => req.socket.destroy());
    }, timeoutMs);
    const done = () => clearTimeout(timer);
    req.once("end", done);
    res.once("close", done);
    next();
  };
}

/** Why a parsed body cannot be taken, or undefined; iterative, so any depth JSON.parse accepts is checked safely. */
function unacceptableJson(body: unknown): HttpError | undefined {
  const pending: { value: unknown; depth: number }[] = [{ value: body, depth: 0 }];
  while (pending.length) {
    const { value, depth } = pending.pop()!;
    if (typeof value === "string") {
      if (!acceptableText(value)) return badUnicode();
    } else if (value !== null && typeof value === "object") {
      if (depth >= MAX_JSON_DEPTH) {
        return new HttpError(400, "JSON_TOO_DEEP", `The request body is nested deeper than ${MAX_JSON_DEPTH} levels.`);
      }
      for (const [key, item] of Object.entries(value)) {
        if (!acceptableText(key)) return badUnicode();
        pending.push({ value: item, depth: depth + 1 });
      }
    }
  }
  return undefined;
}

const acceptableText = (text: string) => !text.includes("\u0000") && text.isWellFormed();
const badUnicode = () => new HttpError(BAD_UNICODE.status, BAD_UNICODE.code, BAD_UNICODE.message);

/** The body deadline, express.json, and the checks of what it parsed. */
export function requestBodies(timeoutSeconds: number): RequestHandler[] {
  return [
    bodyDeadline(timeoutSeconds * 1000),
    express.json({ limit: MAX_BODY_BYTES }),
    (req, _res, next) => next(unacceptableJson(req.body)),
  ];
}
