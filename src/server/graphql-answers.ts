// The HTTP side of GraphQL answers: their media type, their status and
// headers (Retry-After, WWW-Authenticate), decided by what the operation's
// errors noted, and a cap on their size. A module without Grafast, so the
// gateway can mount it before GRAPHILE_ENV is set (Grafast reads its mode
// once, when first loaded).
import { AsyncLocalStorage } from "node:async_hooks";
import type { Request, RequestHandler } from "express";

export const GRAPHQL_RESPONSE_JSON = "application/graphql-response+json";

/**
 * The media type of a GraphQL answer to this request: the spec's
 * application/graphql-response+json when the client names it and prefers it,
 * and application/json to everyone else (an Accept of any type, or none: the
 * spec's legacy watershed), since older clients only read that.
 */
export function graphqlMediaType(req: Request): typeof GRAPHQL_RESPONSE_JSON | "application/json" {
  const named = (req.headers.accept ?? "").includes(GRAPHQL_RESPONSE_JSON);
  return named && req.accepts([GRAPHQL_RESPONSE_JSON, "application/json"]) === GRAPHQL_RESPONSE_JSON ? GRAPHQL_RESPONSE_JSON : "application/json";
}

/**
 * grafserv takes a client that accepts anything (or sends no Accept) to want
 * application/graphql-response+json; such a client is told it gets
 * application/json, as graphqlMediaType decides. A browser's Accept, which
 * names text/html, still gets Ruru where it is served.
 */
export const graphqlAccept: RequestHandler = (req, _res, next) => {
  const accept = req.headers.accept ?? "";
  if (!/application\/(graphql-response\+)?json|text\/html/.test(accept) && (accept.trim() === "" || /(^|,)\s*(\*|application)\/\*/.test(accept))) {
    req.headers.accept = "application/json";
  }
  next();
};

/** What errors of the operation say about its HTTP answer. */
interface AnswerNotes {
  retryAfterSeconds?: number;
  /** The status the answer has, whatever else it holds. */
  status?: number;
  /** The status the answer has when nothing of the operation was answered (every root field null). */
  refusedStatus?: number;
  headers?: Record<string, string>;
}
const answerNotes = new AsyncLocalStorage<AnswerNotes>();

/**
 * Called by maskError for an error the client may retry: the answer gets
 * Retry-After; 503 when the server was too busy to start on it, and otherwise
 * `status` (REST's for the same refusal) when it refused the whole operation.
 */
export function noteRetryable(retryAfterSeconds: number, status: number, busy: boolean): void {
  const notes = answerNotes.getStore();
  if (!notes) return;
  notes.retryAfterSeconds = Math.max(notes.retryAfterSeconds ?? 0, retryAfterSeconds);
  if (busy) noteAnswerStatus(503);
  else notes.refusedStatus ??= status;
}

/** Called by maskError for an error that decides the whole answer's status and headers (the first such wins). */
export function noteAnswerStatus(status: number, headers: Record<string, string> = {}): void {
  const notes = answerNotes.getStore();
  if (!notes || notes.status !== undefined) return;
  notes.status = status;
  notes.headers = headers;
}

/** Whether the answer gives nothing of what was asked: no data, or null for each root field. */
function nothingAnswered(body: Buffer): boolean {
  try {
    const { data } = JSON.parse(body.toString()) as { data?: Record<string, unknown> | null };
    return data == null || Object.values(data).every((value) => value === null);
  } catch {
    return false;
  }
}

/**
 * The answer grafserv writes in one piece is replaced, beyond the cap, by an
 * error: the client learns to ask for less rather than the gateway sending it.
 * A retryable failure gets its Retry-After, and the status its errors decided
 * (503 when the server was busy, 401 with a Bearer challenge when the session
 * had ended, REST's status for a refusal of the whole operation).
 */
export function graphqlResponses(maxBytes: number): RequestHandler {
  return (_req, res, next) => {
    const notes: AnswerNotes = {};
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => typeof res;
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as (...args: unknown[]) => typeof res;
    let head: unknown[] | undefined;
    const restore = () => {
      res.writeHead = writeHead as typeof res.writeHead;
      res.write = write as typeof res.write;
      res.end = end as typeof res.end;
    };
    res.writeHead = ((...args: unknown[]) => {
      head = args;
      return res;
    }) as typeof res.writeHead;
    // A streamed answer (incremental delivery) goes out as it comes.
    res.write = ((...args: unknown[]) => {
      restore();
      if (head) writeHead(...head);
      return write(...args);
    }) as typeof res.write;
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      restore();
      if (Buffer.isBuffer(chunk) && chunk.length > maxBytes) {
        const body = JSON.stringify({ errors: [tooLarge(maxBytes, chunk.length)] });
        res.locals.responseTooLarge = chunk.length;
        writeHead(413, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(body) });
        return end(body);
      }
      if (notes.retryAfterSeconds !== undefined) res.setHeader("Retry-After", String(notes.retryAfterSeconds));
      for (const [name, value] of Object.entries(notes.headers ?? {})) res.setHeader(name, value);
      const status = notes.status ?? (notes.refusedStatus !== undefined && Buffer.isBuffer(chunk) && nothingAnswered(chunk) ? notes.refusedStatus : undefined);
      if (status !== undefined && head) head[0] = status;
      if (head) writeHead(...head);
      return end(chunk, ...rest);
    }) as typeof res.end;
    answerNotes.run(notes, next);
  };
}

/** The refusal of an answer over `maxBytes`, saying how large it is when that is known. */
export function tooLarge(maxBytes: number, bytes?: number) {
  const size = bytes === undefined ? `more than ${maxBytes} bytes` : `${bytes} bytes, more than the limit of ${maxBytes}`;
  return {
    message: `The answer would be ${size}; ask for fewer rows or fields, or request an export.`,
    extensions: { code: "GRAPHQL_RESPONSE_TOO_LARGE", limit: maxBytes },
  };
}

// Characters JSON writes as more than themselves.
const ESCAPED = /["\\\u0000-\u001f]/;

/**
 * How many bytes JSON.stringify makes of `value`, counted only to just past
 * `limit`: the work is bounded by the limit, however often a string repeats.
 * (Strings are not memoized: a Map hashes a long string by its length alone,
 * and many of one length would be compared in full.)
 */
export function jsonBytes(value: unknown, limit: number): number {
  const stringBytes = (text: string) => {
    let bytes = Buffer.byteLength(text) + 2;
    if (ESCAPED.test(text)) {
      for (let i = 0; i < text.length; i++) {
        const code = text.charCodeAt(i);
        if (code === 0x22 || code === 0x5c || code === 0x08 || code === 0x09 || code === 0x0a || code === 0x0c || code === 0x0d) bytes += 1;
        else if (code < 0x20) bytes += 5;
      }
    }
    return bytes;
  };
  let total = 0;
  const add = (item: unknown): boolean => {
    if (typeof item === "string") total += stringBytes(item);
    else if (item === null || typeof item !== "object") total += item === undefined ? 0 : String(item).length;
    else if (Array.isArray(item)) {
      total += 1 + Math.max(1, item.length);
      for (const element of item) if (add(element)) return true;
    } else {
      const entries = Object.entries(item);
      total += 1 + Math.max(1, entries.length);
      for (const [key, element] of entries) {
        total += stringBytes(key) + 1;
        if (add(element)) return true;
      }
    }
    return total > limit;
  };
  add(value);
  return total;
}
