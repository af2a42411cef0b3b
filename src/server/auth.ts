// Who is calling. A bearer token is verified (HS256 with JWT_SECRET, or RS256
// with JWT_PUBLIC_KEY from an external identity provider) before any SQL runs;
// its claims become the transaction settings that RLS reads.
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { expressjwt, UnauthorizedError, type Request as JWTRequest } from "express-jwt";
import jwt, { type Algorithm } from "jsonwebtoken";
import type pg from "pg";
import type { Config } from "../config.ts";
import { HttpError, sendError } from "./errors.ts";

export const TOKEN_AUDIENCE = "prompter";
/** How PostGraphile and `prompter token` sign; the lifetime is the `exp` claim from SQL. */
export const SIGN_OPTIONS = { algorithm: "HS256", audience: TOKEN_AUDIENCE, issuer: "prompter" } as const;

export interface Caller {
  role: "app_user" | "app_admin";
  userId: string;
}

const SIGNED_IN_ROLES = new Set(["app_user", "app_admin"]);

/** A bigint identity as text: what user and export ids look like on the wire. */
export const DATABASE_ID = /^[1-9]\d{0,17}$/;

/** The verified caller, or undefined for anonymous requests. */
export function callerOf(req: Request): Caller | undefined {
  return (req as Request & { caller?: Caller }).caller;
}

/**
 * The settings each transaction runs with: the role, the claims RLS reads, the
 * token lifetime, and the request id (seen in pg_stat_activity and recorded with exports).
 */
export function pgSettingsFor(caller: Caller | undefined, config: Config, requestId: string): Record<string, string> {
  const role = caller?.role ?? "app_anonymous";
  const common = {
    "prompter.jwt_ttl": `${config.jwtExpiresInSeconds} seconds`,
    "prompter.request_id": requestId,
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

function callerFromClaims(claims: jwt.JwtPayload): Caller {
  const userId = String(claims.user_id ?? "");
  if (!SIGNED_IN_ROLES.has(String(claims.role)) || !DATABASE_ID.test(userId) || typeof claims.exp !== "number") {
    throw new HttpError(401, "INVALID_TOKEN", "The token lacks a valid role, user_id or exp claim.");
  }
  return { role: claims.role as Caller["role"], userId };
}

/**
 * Requests without an Authorization header go on as anonymous; any header that
 * is not a valid bearer token is refused with 401.
 */
export function authenticate(config: Config): RequestHandler {
  const algorithms: Algorithm[] = config.jwtPublicKey ? ["HS256", "RS256"] : ["HS256"];
  const verify = expressjwt({
    // The key follows the token's algorithm, and jsonwebtoken checks the key's type
    // against it, so an RS256 public key can never be used as an HS256 secret.
    secret: (_req, token) => (token?.header.alg === "RS256" && config.jwtPublicKey) || config.jwtSecret,
    algorithms,
    audience: TOKEN_AUDIENCE,
    credentialsRequired: true,
  });
  return (req, res, next) => {
    if (req.headers.authorization === undefined) return next();
    verify(req, res, (error?: unknown) => {
      if (error) return refuse(res, error, next);
      try {
        (req as Request & { caller?: Caller }).caller = callerFromClaims((req as JWTRequest).auth!);
      } catch (invalid) {
        return refuse(res, invalid, next);
      }
      next();
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
  if (!callerOf(req)) throw new HttpError(401, "SIGN_IN_REQUIRED", "Sign in: send Authorization: Bearer <token>.");
  next();
};

/** Signs claims from app_private.jwt_for as PostGraphile does (user_id a string, like any bigint). */
export function signToken(claims: { role: string; user_id: string; exp: number }, secret: string): string {
  return jwt.sign(claims, secret, SIGN_OPTIONS);
}
