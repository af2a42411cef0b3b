// The HTTP side of a GraphQL answer: its status and Retry-After, decided by
// the errors in it, and its size, capped.
import { AsyncLocalStorage } from "node:async_hooks";
import type { RequestHandler } from "express";

/** What errors of the operation say about its HTTP answer. */
interface AnswerNotes {
  retryAfterSeconds?: number;
  status?: number;
}
const answerNotes = new AsyncLocalStorage<AnswerNotes>();

/**
 * Called by maskError for an error the client may retry: the answer gets
 * Retry-After, and 503 when the server was too busy to start on it.
 */
export function noteRetryable(retryAfterSeconds: number, busy: boolean): void {
  const notes = answerNotes.getStore();
  if (!notes) return;
  notes.retryAfterSeconds = Math.max(notes.retryAfterSeconds ?? 0, retryAfterSeconds);
  if (busy) noteAnswerStatus(503);
}

/** Called by maskError for an error that decides the whole answer's status (the first such wins). */
export function noteAnswerStatus(status: number): void {
  const notes = answerNotes.getStore();
  if (notes) notes.status ??= status;
}

/**
 * The answer grafserv writes in one piece is replaced, beyond the cap, by an
 * error: the client learns to ask for less rather than the gateway sending it.
 * A retryable failure gets its Retry-After, and the status its errors decided
 * (503 when the server was busy, 401 when the session had ended).
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
      if (notes.status !== undefined && head) head[0] = notes.status;
      if (head) writeHead(...head);
      return end(chunk, ...rest);
    }) as typeof res.end;
    answerNotes.run(notes, next);
  };
}
