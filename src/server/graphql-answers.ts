// The HTTP side of a GraphQL answer: its status and Retry-After, decided by
// the errors in it, and its size, capped.
import { AsyncLocalStorage } from "node:async_hooks";
import type { RequestHandler, Response } from "express";
import { GraphQLError } from "postgraphile/graphql";

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
        const body = JSON.stringify({ errors: [tooLarge(maxBytes, chunk.length)] });
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

/** The refusal of an answer over `maxBytes`, saying how large it is when that is known. */
export function tooLarge(maxBytes: number, bytes?: number) {
  const size = bytes === undefined ? `more than ${maxBytes} bytes` : `${bytes} bytes, more than the limit of ${maxBytes}`;
  return {
    message: `The answer would be ${size}; ask for fewer rows or fields, or request an export.`,
    extensions: { code: "GRAPHQL_RESPONSE_TOO_LARGE", limit: maxBytes },
  };
}

/**
 * An operation's answer measured as JSON before grafserv writes it, and
 * replaced by a 413 refusal when it is over `maxBytes`. PostgreSQL's bytes are
 * capped as they arrive (answer-budget.ts), but the answer can repeat what was
 * read once (aliases of one field are one statement): the data then holds one
 * string many times, which costs nothing until it is written out. `bytes` is
 * its size (counted only to just past `maxBytes` when it is over).
 */
export function sizedAnswer<T>(result: T, maxBytes: number, res: Response): { answer: T | { errors: GraphQLError[] }; bytes: number } {
  if (!result || typeof result !== "object" || !("data" in result) || result.data == null) return { answer: result, bytes: 0 };
  const bytes = jsonBytes(result.data, maxBytes);
  if (bytes <= maxBytes) return { answer: result, bytes };
  noteAnswerStatus(413);
  res.locals.responseTooLarge = bytes;
  const { message, extensions } = tooLarge(maxBytes);
  return { answer: { errors: [new GraphQLError(message, { extensions })] }, bytes };
}

// Characters JSON writes as more than themselves.
const ESCAPED = /["\\\u0000-\u001f]/;

/**
 * How many bytes JSON.stringify makes of `value`, counted only to just past
 * `limit`: the work is bounded by the limit, however often a string repeats.
 * (Strings are not memoized: a Map hashes a long string by its length alone,
 * and many of one length would be compared in full.)
 */
function jsonBytes(value: unknown, limit: number): number {
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
