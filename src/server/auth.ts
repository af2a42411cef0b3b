// Who is calling. A bearer token is verified (HS256 with JWT_SECRET, or RS256
// with JWT_PUBLIC_KEY from an external identity provider) before any SQL runs.
// The token only names the user: on every request app_hidden.gateway_session_role
// decides in SQL whether that user still exists, is enabled, is an admin, and
// whether the token was revoked; its answer becomes the role the request runs as.
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { expressjwt, UnauthorizedError, type Request as JWTRequest } from "express-jwt";
import jwt, { type Algorithm } from "jsonwebtoken";
import type pg from "pg";
import type { Config } from "../config.ts";
import { callerOf, DATABASE_ID, setCaller, type Caller } from "./caller.ts";
import { HttpError, sendError } from "./errors.ts";

export const TOKEN_AUDIENCE = "prompter";
export const TOKEN_ISSUER = "prompter";
/** How PostGraphile and `prompter token` sign; the lifetime is the `exp` claim from SQL. */
export const SIGN_OPTIONS = { algorithm: "HS256", audience: TOKEN_AUDIENCE, issuer: TOKEN_ISSUER } as const;

const SIGNED_IN_ROLES = new Set(["app_user", "app_admin"]);

/** What a verified token says: who, and which of the user's token generations it belongs to. */
interface TokenIdentity {
  userId: string;
  /** Ours carry one; an identity provider's tokens do not (they are checked against their iat instead). */
  tokenGeneration: number | null;
  issuedAt: number | null;
}

/** The signed-in caller; anonymous requests are refused with 401. */
export function signedInCaller(req: Request): Caller {
  const caller = callerOf(req);
  if (!caller) throw new HttpError(401, "SIGN_IN_REQUIRED", "Sign in: send Authorization: Bearer <token>.");
  return caller;
}

/**
 * The settings each transaction runs with: the role, the claims RLS reads, the
 * token lifetime, and the request id (seen in pg_stat_activity and recorded with exports).
 */
export function pgSettingsFor(req: Request, config: Config, requestId: string): Record<string, string> {
  const caller = callerOf(req);
  const role = caller?.role ?? "app_anonymous";
  const common = {
    "prompter.jwt_ttl": `${config.jwtExpiresInSeconds} seconds`,
    "prompter.request_id": requestId,
    // Sign-in failures are throttled per address too (app_private.sign_in_keys).
    "prompter.client_address": req.ip ?? "",
    "prompter.allow_registration": config.allowRegistration ? "on" : "off",
    application_name: `prompter-gateway ${requestId}`,
    statement_timeout: `${config.apiTimeouts.statementMs[role]}ms`,
    lock_timeout: `${config.apiTimeouts.lockMs}ms`,
  };
  if (!caller) return { role, ...common };
  return { role, "jwt.claims.user_id": caller.userId, ...common };
}

/** Runs `work` in a transaction as the caller, so RLS and grants decide what it sees. */
export async function asCaller<T>(
  pool: pg.Pool,
  settings: Record<string, string>,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config(key, value, true) from json_each_text($1)", [JSON.stringify(settings)]);
    const result = await work(client);
    await client.query("commit");
    return result;
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

// Clocks differ a little, and SQL rounds exp to the second.
const CLOCK_TOLERANCE_SECONDS = 60;

const invalid = (message: string) => new HttpError(401, "INVALID_TOKEN", message);

function identityFromClaims(claims: jwt.JwtPayload, algorithm: string, config: Config): TokenIdentity {
  const userId = String(claims.user_id ?? "");
  if (!DATABASE_ID.test(userId) || typeof claims.exp !== "number") throw invalid("The token lacks a valid user_id or exp claim.");
  // The role comes from the database; a claim naming any other role is a forgery.
  if (claims.role !== undefined && !SIGNED_IN_ROLES.has(String(claims.role))) throw invalid("The token claims a role it may not use.");
  const now = Math.floor(Date.now() / 1000);
  const issuedAt = typeof claims.iat === "number" ? claims.iat : null;
  if (claims.exp - Math.min(now, issuedAt ?? now) > config.jwtMaxLifetimeSeconds + CLOCK_TOLERANCE_SECONDS) {
    throw invalid(`The token lives longer than the ${config.jwtMaxLifetimeSeconds} seconds accepted (JWT_MAX_LIFETIME).`);
  }
  if (algorithm === "RS256") {
    if (claims.iss !== config.jwtIssuer) throw invalid("The token is not from the identity provider's issuer (JWT_ISSUER).");
    if (issuedAt === null) throw invalid("The token lacks an iat claim.");
    return { userId, tokenGeneration: null, issuedAt };
  }
  if (claims.iss !== TOKEN_ISSUER || !Number.isInteger(claims.token_generation)) {
    throw invalid("The token was not issued by prompter; sign in again.");
  }
  return { userId, tokenGeneration: claims.token_generation, issuedAt };
}

/** The role the user has now; fails with PRSES (401) when the user is gone, disabled or the token revoked. */
async function sessionCaller(pool: pg.Pool, identity: TokenIdentity): Promise<Caller> {
  const { rows } = await pool.query<{ role: Caller["role"] }>("select app_hidden.gateway_session_role($1, $2, $3) as role", [
    identity.userId,
    identity.tokenGeneration,
    identity.issuedAt,
  ]);
  return { role: rows[0].role, userId: identity.userId };
}

/**
 * Requests without an Authorization header go on as anonymous; any header that
 * is not a valid bearer token of a current session is refused with 401.
 */
export function authenticate(config: Config, pool: pg.Pool): RequestHandler {
  const algorithms: Algorithm[] = config.jwtPublicKey ? ["HS256", "RS256"] : ["HS256"];
  const verify = expressjwt({
    // The key follows the token's algorithm, and jsonwebtoken checks the key's type
    // against it, so an RS256 public key can never be used as an HS256 secret.
    secret: (req, token) => {
      (req as Request & { tokenAlgorithm?: string }).tokenAlgorithm = token?.header.alg;
      return (token?.header.alg === "RS256" && config.jwtPublicKey) || config.jwtSecret;
    },
    algorithms,
    audience: TOKEN_AUDIENCE,
    credentialsRequired: true,
  });
  return (req, res, next) => {
    if (req.headers.authorization === undefined) return next();
    verify(req, res, (error?: unknown) => {
      if (error) return refuse(res, error, next);
      const algorithm = (req as Request & { tokenAlgorithm?: string }).tokenAlgorithm ?? "";
      Promise.resolve()
        .then(() => sessionCaller(pool, identityFromClaims((req as JWTRequest).auth!, algorithm, config)))
        .then((caller) => {
          setCaller(req, caller);
          next();
        }, (failure) => refuse(res, failure, next));
    });
  };
}

function refuse(res: Response, error: unknown, next: NextFunction): void {
  if (error instanceof HttpError) return sendError(res, error);
  if (!(error instanceof UnauthorizedError)) return next(error);
  const expired = error.inner instanceof jwt.TokenExpiredError;
  sendError(res, {
    status: 401,
    code: expired ? "TOKEN_EXPIRED" : "INVALID_TOKEN",
    message: expired ? "The token has expired; sign in again." : "The token is not valid. Send Authorization: Bearer <token>.",
  });
}

/** For routes that need a signed-in caller. */
export const requireCaller: RequestHandler = (req, _res, next) => {
  signedInCaller(req);
  next();
};

/** Signs claims from app_private.jwt_for as PostGraphile does (user_id a string, like any bigint). */
export function signToken(claims: { role: string; user_id: string; exp: number; token_generation: number }, secret: string): string {
  return jwt.sign(claims, secret, SIGN_OPTIONS);
}
