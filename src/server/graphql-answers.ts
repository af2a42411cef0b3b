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
        const body = JSON.stringify({
          errors: [{
            message: `The answer would be ${chunk.length} bytes, more than the limit of ${maxBytes}; ask for fewer rows or fields, or request an export.`,
            extensions: { code: "GRAPHQL_RESPONSE_TOO_LARGE", limit: maxBytes },
          }],
        });
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
