// The GraphQL API: app_public as PostGraphile V5 sees it (Amber), with
// aggregates and connection filters. Each request runs as its caller.
import { randomBytes } from "node:crypto";
import type { Request } from "express";
import type pg from "pg";
import { postgraphile } from "postgraphile";
import { makePgService, makeWithPgClientViaPgClientAlreadyInTransaction } from "postgraphile/adaptors/pg";
import { defaultMaskError } from "postgraphile/grafserv";
import { isSafeError, lambda, object, type ExecutableStep } from "postgraphile/grafast";
import { GraphQLError, type GraphQLFormattedError } from "postgraphile/graphql";
import { wrapPlans } from "postgraphile/utils";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { PgAggregatesPreset } from "@graphile/pg-aggregates";
import { PostGraphileConnectionFilterPreset } from "postgraphile-plugin-connection-filter";
import type { Config } from "../config.ts";
import type { Log } from "../log.ts";
import { RowBytesBudget } from "./answer-budget.ts";
import { callerTransactions, SIGN_OPTIONS } from "./auth.ts";
import { bearerChallenge, GRAPHQL_PATH, HttpError, MAX_BODY_BYTES, publicDatabaseError, type PublicError } from "./errors.ts";
import { anonymousIntrospectionPlugin } from "./graphql-introspection.ts";
import { noteAnswerStatus, noteRetryable } from "./graphql-answers.ts";
import { graphqlLimitsPlugins } from "./graphql-limits.ts";
import { currentRequestId } from "./request-log.ts";

/**
 * grafserv's maskError: passes the public database errors through and masks
 * the rest; what a masked error was is logged with the request id.
 */
function maskErrorFor(log: Log) {
  return (error: GraphQLError): GraphQLError | GraphQLFormattedError => {
    const original = error.originalError;
    const visible: Pick<PublicError, "status" | "code" | "message" | "retryAfterSeconds"> | undefined =
      original instanceof HttpError ? original : publicDatabaseError(original) ?? rowNotFound(original);
    if (visible) {
      // Retry-After on the answer; 503 when the service could not serve it at
      // all, and REST's status (429, 503) when nothing of the operation was
      // answered; a rate limit or a timeout of one field of several stays a
      // GraphQL error like any other.
      if (visible.retryAfterSeconds !== undefined) noteRetryable(visible.retryAfterSeconds, visible.status, UNAVAILABLE_CODES.has(visible.code));
      // The token's session has ended: the whole request is unauthorized, as on REST.
      if (visible.code === "PRSES") noteAnswerStatus(401, { "WWW-Authenticate": bearerChallenge(visible) });
      if (visible.code === "GRAPHQL_RESPONSE_TOO_LARGE") noteAnswerStatus(413);
      return new GraphQLError(visible.message, {
        nodes: error.nodes,
        source: error.source,
        positions: error.positions,
        path: error.path,
        originalError: original,
        extensions: {
          code: visible.code,
          ...(visible.retryAfterSeconds !== undefined ? { retryAfterSeconds: visible.retryAfterSeconds } : {}),
        },
      });
    }
    // Validation and other GraphQL errors are safe as they are.
    if (!original || original instanceof GraphQLError) return error;
    if (isSafeError(original)) {
      // Our own safe errors (a refused page size) carry their code; Grafast's are INTERNAL.
      const masked = defaultMaskError(error);
      return { ...masked.toJSON(), extensions: { code: "INTERNAL", ...masked.extensions } };
    }
    const errorId = randomBytes(6).toString("hex");
    log.error({ requestId: currentRequestId(), errorId, path: error.path, err: original }, "GraphQL error masked");
    return {
      message: `An error occurred (error id ${errorId}).`,
      locations: error.locations,
      path: error.path,
      extensions: { code: "INTERNAL", errorId },
    };
  };
}

/** The errors that mean the service could not serve the request now: the answer is 503, as REST's is. */
const UNAVAILABLE_CODES = new Set(["DATABASE_UNAVAILABLE", "SERVER_BUSY", "SHUTTING_DOWN"]);

// A delete that RLS (or a wrong id) leaves without a row fails with a plain
// Error in PostGraphile, where an update answers null; both mean "not found".
function rowNotFound(error: Error | undefined) {
  const missing = error && /^No values were deleted in collection '\w+'/.test(error.message);
  return missing ? { status: 404, code: "NOT_FOUND", message: "There is no such row that you may delete." } : undefined;
}

// authenticate and change_password return null for a wrong password, and
// register for a taken username, so that the failure they record commits and
// counts towards its backoff; here that null becomes the error the caller
// sees, and the payload is null.
const REFUSED_WHEN_NULL: Record<string, [status: number, code: string, message: string]> = {
  authenticate: [401, "PRCRD", "Wrong username or password."],
  changePassword: [401, "PRCRD", "The current password is wrong."],
  register: [409, "PRTKN", "This username is taken; choose another."],
};
const refuseWrongPassword = wrapPlans({
  Mutation: Object.fromEntries(Object.entries(REFUSED_WHEN_NULL).map(([field, [status, code, message]]) => [field, (plan: () => ExecutableStep) => {
    const $payload = plan() as ExecutableStep & { getStepForKey(key: string): ExecutableStep & { get(attribute: string): ExecutableStep } };
    const $result = $payload.getStepForKey("result");
    const $signedIn = lambda($result.get("user_id"), (userId) => {
      if (userId == null) throw new HttpError(status, code, message);
      return true;
    });
    return object({ result: $result, signedIn: $signedIn });
  }])),
});

/** Fields that check a password (bcrypt) or create an account: at most one per operation (graphql-limits.ts). */
const CREDENTIAL_FIELDS = new Set(["authenticate", "register", "changePassword"]);

export function createPostGraphile(config: Config, pool: pg.Pool, log: Log) {
  const asCaller = callerTransactions(pool, config);
  return postgraphile({
    extends: [PostGraphileAmberPreset, PgAggregatesPreset, PostGraphileConnectionFilterPreset],
    plugins: [
      anonymousIntrospectionPlugin(config.production),
      ...graphqlLimitsPlugins(config.graphqlLimits, CREDENTIAL_FIELDS, config.callerLimits.maxWaitSeconds),
      refuseWrongPassword,
    ],
    // Introspect as app_admin (who holds every grant app_user has, and more), so
    // the schema offers only what the grants allow: no createUser, no updateExport.
    pgServices: [makePgService({ pool, schemas: ["app_public"], pubsub: false, pgSettingsForIntrospection: { role: "app_admin" } })],
    gather: { pgJwtTypes: "app_public.jwt_token" },
    // No expiresIn: app_public.jwt_token carries exp (from JWT_EXPIRES_IN via prompter.jwt_ttl).
    schema: { pgJwtSecret: config.jwtSecret, pgJwtSignOptions: SIGN_OPTIONS },
    grafast: {
      // Each transaction PostGraphile opens for the request is begun as REST's are
      // (settings and session check in the same round trip as begin); PostGraphile
      // then works inside it, as in a transaction of its own. An operation's
      // transactions (one per root field, or per batch of them) run one after
      // another: one request never holds more than one connection of the pool,
      // however many aliases it sends. Their rows share one byte budget.
      context(requestContext) {
        const req = requestContext.expressv4!.req as Request;
        const rowBytes = new RowBytesBudget(config.graphqlLimits.maxResponseBytes);
        let previous: Promise<unknown> = Promise.resolve();
        const withPgClient: Grafast.Context["withPgClient"] = (_pgSettings, callback) => {
          const turn = previous.then(async () => {
            if (rowBytes.exceeded) throw rowBytes.refusal();
            try {
              return await asCaller(req, (client) => makeWithPgClientViaPgClientAlreadyInTransaction(client, true)(null, callback), rowBytes);
            } catch (error) {
              // The connection the budget closed fails the work with pg's error.
              throw rowBytes.exceeded ? rowBytes.refusal() : error;
            }
          });
          previous = turn.catch(() => undefined);
          return turn;
        };
        return { withPgClient, rowBytes };
      },
    },
    grafserv: {
      graphqlPath: GRAPHQL_PATH,
      // Both switches, or GET /graphql with Accept: text/html still serves Ruru.
      graphiql: !config.production,
      graphiqlOnGraphQLGET: !config.production,
      // Queries over GET too, as the GraphQL-over-HTTP spec describes (never mutations).
      graphqlOverGET: true,
      graphiqlPath: "/graphiql",
      websockets: false,
      maxRequestLength: MAX_BODY_BYTES,
      maskError: maskErrorFor(log),
    },
  });
}
