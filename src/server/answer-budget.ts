// The bytes of rows one GraphQL operation may read from PostgreSQL, counted
// as each row arrives: past the budget, the statement keeps no more rows and
// fails when PostgreSQL is done with it, and the operation's later statements
// are not sent. So an answer too large to send is refused before the gateway
// holds it, whatever the estimate said of its rows' widths.
import pg from "pg";
import { HttpError } from "./errors.ts";

/** What node-postgres's Query keeps of a statement (not in its types). */
interface QueryInternals {
  handleDataRow(message: { fields: (string | Buffer | null)[] }): void;
  _canceledDueToError: Error | false;
  _result: { rows: unknown[] };
}

declare global {
  namespace Grafast {
    interface Context {
      /** The operation's budget of row bytes (graphql.ts), which the cost plugin reads once it has run. */
      rowBytes?: RowBytesBudget;
    }
  }
}

export class RowBytesBudget {
  private used = 0;
  readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** The bytes read so far. */
  get read(): number {
    return this.used;
  }

  /** Throws the refusal once the budget is spent. */
  check(): void {
    if (this.used > this.limit) throw this.refusal();
  }

  refusal(): HttpError {
    return new HttpError(413, "GRAPHQL_RESPONSE_TOO_LARGE",
      `The answer would be more than ${this.limit} bytes; ask for fewer rows or fields, or request an export.`);
  }

  /**
   * Sends `args` (a query config, or text and values) through `send` as a
   * statement whose rows are counted against the budget.
   */
  query(send: (query: pg.Query) => unknown, args: unknown[]): Promise<pg.QueryResult> {
    const [config, values] = args as [pg.QueryConfig | string, unknown[] | undefined];
    return new Promise((resolve, reject) => {
      const query = new pg.Query(config, values, (error: Error | undefined, result: pg.QueryResult) => (error ? reject(error) : resolve(result)));
      const internals = query as unknown as QueryInternals;
      const keep = internals.handleDataRow.bind(query);
      internals.handleDataRow = (message) => {
        if (internals._canceledDueToError) return;
        for (const field of message.fields) if (field !== null) this.used += typeof field === "string" ? Buffer.byteLength(field) : field.length;
        if (this.used <= this.limit) return keep(message);
        // node-postgres drops the rows still to come and fails the statement with this error when it ends.
        internals._canceledDueToError = this.refusal();
        internals._result.rows = [];
      };
      send(query);
    });
  }
}
