// The bytes PostgreSQL may send for one GraphQL operation, counted on the
// connection as they arrive, before node-postgres has a whole row (a nested
// page comes as one row): past the budget, the connection is closed, so the
// gateway never holds more than the budget of an answer too large to send,
// and the operation's later statements are not sent. This is exact, whatever
// the rows' widths; the estimate cannot be (see graphql-cost.ts).
import type { Socket } from "node:net";
import type pg from "pg";
import { closeConnection } from "../db/pool.ts";
import { HttpError } from "./errors.ts";
import { tooLarge } from "./graphql-answers.ts";

declare global {
  namespace Grafast {
    interface Context {
      /** The operation's budget of bytes from PostgreSQL (graphql.ts), which the cost plugin reads once it has run. */
      rowBytes?: RowBytesBudget;
    }
  }
}

export class RowBytesBudget {
  private used = 0;
  private closed = false;
  readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** The bytes PostgreSQL sent so far. */
  get read(): number {
    return this.used;
  }

  /** Whether PostgreSQL sent more than the budget (and the connection that carried it was closed). */
  get exceeded(): boolean {
    return this.closed;
  }

  refusal(): HttpError {
    const { message, extensions } = tooLarge(this.limit);
    return new HttpError(413, extensions.code, message);
  }

  /** Counts what PostgreSQL sends on `client` until the returned function is called. */
  watch(client: pg.PoolClient): () => void {
    const stream = (client as unknown as { connection: { stream: Socket } }).connection.stream;
    const count = (chunk: Buffer) => {
      this.used += chunk.length;
      if (this.used <= this.limit || this.closed) return;
      this.closed = true;
      // The transaction ends with the connection; the pool replaces it.
      closeConnection(client);
    };
    stream.on("data", count);
    return () => stream.off("data", count);
  }
}
