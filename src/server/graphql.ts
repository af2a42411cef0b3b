// The GraphQL API: app_public as PostGraphile V5 sees it (Amber), with
// aggregates and connection filters. Each request runs as its caller.
import { randomBytes } from "node:crypto";
import type { Request } from "express";
import type pg from "pg";
import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { defaultMaskError } from "postgraphile/grafserv";
import { isSafeError } from "postgraphile/grafast";
import { GraphQLError, type GraphQLFormattedError } from "postgraphile/graphql";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { PgAggregatesPreset } from "@graphile/pg-aggregates";
import { PostGraphileConnectionFilterPreset } from "postgraphile-plugin-connection-filter";
import type { Config } from "../config.ts";
import type { Log } from "../log.ts";
import { callerOf, pgSettingsFor, SIGN_OPTIONS } from "./auth.ts";
import { graphqlLimitsPlugins, noteRetryable } from "./graphql-limits.ts";
import { HttpError, MAX_BODY_BYTES, publicDatabaseError, type PublicError } from "./errors.ts";
import { currentRequestId, requestIdOf } from "./request-log.ts";

/**
 * grafserv's maskError: passes the public database errors through and masks
 * the rest; what a masked error was is logged with the request id.
 */
function maskErrorFor(log: Log) {
  return (error: GraphQLError): GraphQLError | GraphQLFormattedError => {
    const original = error.originalError;
    const visible: Omit<PublicError, "status"> | undefined = original instanceof HttpError ? original : (publicDatabaseError(original) ?? rowNotFound(original));
    if (visible) {
      if (visible.retryAfterSeconds !== undefined) noteRetryable(visible.retryAfterSeconds, visible.code === "SERVER_BUSY" || visible.code === "SHUTTING_DOWN");
      return new GraphQLError(visible.message, {
        nodes: error.nodes,
        source: error.source,
        positions: error.positions,
        path: error.path,
        originalError: original,
        extensions: { code: visible.code, ...(visible.retryAfterSeconds !== undefined && { retryAfterSeconds: visible.retryAfterSeconds }) },
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

// A delete that RLS (or a wrong id) leaves without a row fails with a plain
// Error in PostGraphile, where an update answers null; both mean "not found".
function rowNotFound(error: Error | undefined) {
  const missing = error && /^No values were deleted in collection '\w+'/.test(error.message);
  return missing ? { code: "NOT_FOUND", message: "There is no such row that you may delete." } : undefined;
}

export function createPostGraphile(config: Config, pool: pg.Pool, log: Log) {
  return postgraphile({
    extends: [PostGraphileAmberPreset, PgAggregatesPreset, PostGraphileConnectionFilterPreset],
    plugins: graphqlLimitsPlugins(config.graphqlLimits),
    // Introspect as app_admin (who holds every grant app_user has, and more), so
    // the schema offers only what the grants allow: no createUser, no updateExport.
    pgServices: [makePgService({ pool, schemas: ["app_public"], pubsub: false, pgSettingsForIntrospection: { role: "app_admin" } })],
    gather: { pgJwtTypes: "app_public.jwt_token" },
    // No expiresIn: app_public.jwt_token carries exp (from JWT_EXPIRES_IN via prompter.jwt_ttl).
    schema: { pgJwtSecret: config.jwtSecret, pgJwtSignOptions: SIGN_OPTIONS },
    grafast: {
      context(requestContext) {
        const req = requestContext.expressv4!.req as Request;
        return { pgSettings: pgSettingsFor(callerOf(req), config, requestIdOf(req)) };
      },
    },
    grafserv: {
      graphqlPath: "/graphql",
      // Both switches, or GET /graphql with Accept: text/html still serves Ruru.
      graphiql: !config.production,
      graphiqlOnGraphQLGET: !config.production,
      graphiqlPath: "/graphiql",
      websockets: false,
      maxRequestLength: MAX_BODY_BYTES,
      maskError: maskErrorFor(log),
    },
  });
}
