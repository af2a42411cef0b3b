// Who is calling. A bearer token is verified (HS256 with JWT_SECRET, or RS256
// with JWT_PUBLIC_KEY from an external identity provider) before any SQL runs.
// The token only names the user: in each of the request's transactions, before
// anything else, app_hidden.gateway_session_role decides in SQL whether that
// user still exists, is enabled, is an admin, and whether the token was
// revoked; its answer becomes the role the rest of the transaction runs as.
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { expressjwt, UnauthorizedError, type Request as JWTRequest } from "express-jwt";
import jwt, { type Algorithm } from "jsonwebtoken";
import { createHash, createPublicKey, createSecretKey } from "node:crypto";
import type { Socket } from "node:net";
import pg from "pg";
import type { Config } from "../config.ts";
import type { RowBytesBudget } from "./answer-budget.ts";
import { callerOf, DATABASE_ID, recordSessionCheck, setCaller, type Caller } from "./caller.ts";
import { HttpError, sendError } from "./errors.ts";
import { requestIdOf } from "./request-log.ts";

export const TOKEN_AUDIENCE = "prompter";
export const TOKEN_ISSUER = "prompter";
/** How PostGraphile and `prompter token` sign; the lifetime is the `exp` claim from SQL. */
export const SIGN_OPTIONS = { algorithm: "HS256", audience: TOKEN_AUDIENCE, issuer: TOKEN_ISSUER } as const;

const SIGNED_IN_ROLES = new Set(["app_user", "app_admin"]);

/** The signed-in caller; anonymous requests are refused with 401. */
export function signedInCaller(req: Request): Caller {
  const caller = callerOf(req);
  if (!caller) throw new HttpError(401, "SIGN_IN_REQUIRED", "Sign in: send Authorization: Bearer <token>.");
  return caller;
}

/**
 * The settings each transaction runs with: the claims RLS reads, the token
 * lifetime, the request id (seen in pg_stat_activity and recorded with exports)
 * and, unless a session check decides them in SQL, the role and its statement timeout.
 */
function pgSettingsFor(req: Request, config: Config): Record<string, string> {
  const caller = callerOf(req);
  const requestId = requestIdOf(req);
  const common = {
    "prompter.jwt_ttl": `${config.jwtExpiresInSeconds} seconds`,
    "prompter.request_id": requestId,
    // Sign-in failures are throttled per address too (app_private.sign_in_keys).
    "prompter.client_address": req.ip ?? "",
    "prompter.allow_registration": config.allowRegistration ? "on" : "off",
    application_name: `prompter-gateway ${requestId}`,
    lock_timeout: `${config.apiTimeouts.lockMs}ms`,
    // As PostGraphile's own adaptor does: JIT's optimisation pass costs API queries more than it saves.
    jit_optimize_above_cost: "-1",
  };
  const roleSettings = (role: keyof Config["apiTimeouts"]["statementMs"]) => ({ role, statement_timeout: `${config.apiTimeouts.statementMs[role]}ms` });
  if (!caller) return { ...roleSettings("app_anonymous"), ...common };
  const claims = { "jwt.claims.user_id": caller.userId, ...common };
  return caller.session ? claims : { ...roleSettings(caller.role ?? "app_user"), ...claims };
}

/**
 * The settings of a read that runs elsewhere (a read replica) after asCaller's
 * session check on the primary decided the caller's role: the role is set
 * outright there, with its statement timeout.
 */
export function settingsAfterSessionCheck(req: Request, config: Config): Record<string, string> {
  const caller = callerOf(req);
  const role = caller ? caller.role ?? "app_user" : "app_anonymous";
  return { ...pgSettingsFor(req, config), role, statement_timeout: `${config.apiTimeouts.statementMs[role]}ms` };
}

// The statements that start a transaction as the caller, run by the gateway's
// login and prepared once per connection (see prepared(), below): the settings and, for a bearer
// token's caller, the session check, whose answer becomes the role (and that
// role's statement timeout) for the rest of the transaction. The session check
// fails with PRSES (401) when the user is gone, disabled or the token revoked.
const APPLY_SETTINGS = "select count(set_config(key, value, true)) from json_each_text($1::json)";
const CHECK_SESSION = `select set_config('statement_timeout', $2::json ->> s.role, true), set_config('role', s.role, true) as role
  from (${APPLY_SETTINGS}) settings, app_hidden.gateway_session_role($3, $4, $5) s(role)`;

/**
 * Sends begin and the statement that starts the caller's transaction without
 * waiting for them: the socket stays corked until the work's first batch and
 * commit are queued (or the event loop turns), so all of them go in one write
 * and one round trip. The gateway's pool runs in pipeline mode for this.
 */
function startTransaction(client: pg.PoolClient, req: Request, caller: Caller | undefined, settings: Record<string, string>, timeouts: string, preparedLimit: number) {
  const socket = (client as pg.PoolClient & { connection: { stream: Socket } }).connection.stream;
  socket.cork();
  let corked = true;
  const uncork = () => {
    if (corked) socket.uncork();
    corked = false;
  };
  setImmediate(uncork);
  const begun = client.query("begin");
  const start = caller?.session
    ? { name: "prompter_check_session", text: CHECK_SESSION,
        values: [JSON.stringify(settings), timeouts, caller.userId, caller.session.generation, caller.session.issuedAt] }
    : { name: "prompter_apply_settings", text: APPLY_SETTINGS, values: [JSON.stringify(settings)] };
  const checked = client.query(mayPrepare(client, start.text, preparedLimit) ? start : { text: start.text, values: start.values });
  const started = Promise.all([begun, checked]).then(([, { rows }]) => {
    if (caller?.session) {
      caller.role = rows[0].role;
      recordSessionCheck(req, true);
    }
  }, (error: unknown) => {
    if ((error as { code?: string }).code === "PRSES") recordSessionCheck(req, false);
    throw error;
  });
  // Awaited by every query of the work, and after it; this only keeps a failed
  // start from being reported as unhandled while the work has not queried yet.
  started.catch(() => {});
  return { started, uncork };
}

// PostGraphile prepares its selects but sends its mutations unnamed, so
// PostgreSQL would parse and plan the same `select ... from record_run($1)` on
// every request. Queries with parameters and no name get one from their text,
// up to `limit` texts per connection (the start statements among them); the
// rest go unnamed.
const preparedTexts = new WeakMap<pg.PoolClient, Set<string>>();

/** Whether the connection may prepare `text`: it has, or has room for one more. */
function mayPrepare(client: pg.PoolClient, text: string, limit: number): boolean {
  let texts = preparedTexts.get(client);
  if (!texts) preparedTexts.set(client, (texts = new Set()));
  if (texts.has(text)) return true;
  if (texts.size >= limit) return false;
  texts.add(text);
  return true;
}

function prepared(client: pg.PoolClient, args: unknown[], limit: number): unknown[] {
  const [first, ...rest] = args as [pg.QueryConfig | string, ...unknown[]];
  // query(text, values, ...) or query({ text, values, ... }, ...)
  const config: pg.QueryConfig = typeof first === "string" ? { text: first, values: Array.isArray(rest[0]) ? rest.shift() as unknown[] : undefined } : first;
  if (config.name || !config.values || !mayPrepare(client, config.text, limit)) return args;
  return [{ ...config, name: `prompter_${createHash("sha1").update(config.text).digest("base64url")}` }, ...rest];
}

/**
 * Runs `work` in a transaction as the request's caller, so RLS and grants
 * decide what it sees: REST's and every one PostGraphile opens for a request.
 * The work's queries answer with the start's error when the start failed (a
 * query behind it only fails because the transaction is aborted). With
 * `rowBytes`, what PostgreSQL sends for the work counts against that budget.
 *
 * Nearly all work is one batch: the queries it sends before reading any
 * answer (PostGraphile sends one statement per transaction). Commit goes
 * out right behind them, so begin, the start, the work and commit take one
 * round trip instead of two. PostgreSQL commits only if every statement
 * succeeded, and turns commit into rollback otherwise. A query the work sends
 * once the batch is on its way would run after commit, so it is refused (none
 * does: PostGraphile's one work that would, a list read through a cursor for
 * @stream, is not offered).
 */
export function callerTransactions(pool: pg.Pool, config: Config) {
  const timeouts = JSON.stringify(Object.fromEntries(Object.entries(config.apiTimeouts.statementMs).map(([role, ms]) => [role, `${ms}ms`])));
  return async function asCaller<T>(req: Request, work: (client: pg.PoolClient) => Promise<T>, rowBytes?: RowBytesBudget): Promise<T> {
    const caller = callerOf(req);
    const client = await pool.connect();
    const unwatch = rowBytes?.watch(client);
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    let committed: Promise<unknown> | undefined;
    try {
      const { started, uncork } = startTransaction(client, req, caller, pgSettingsFor(req, config), timeouts, config.preparedStatementsPerConnection);
      let batch: "open" | "sealing" | "sent" = "open";
      const sendBatch = () => {
        committed = query("commit");
        batch = "sent";
        uncork();
      };
      client.query = ((...args: unknown[]) => {
        if (batch === "sent") {
          return Promise.reject(new Error("A query after the transaction's first batch would run after its commit."));
        }
        const result = query(...prepared(client, args, config.preparedStatementsPerConnection));
        if (batch === "open") {
          // The rest of the batch is what the work sends before it awaits.
          batch = "sealing";
          queueMicrotask(sendBatch);
        }
        return started.then(() => result, (error) => {
          result.catch(() => {});
          throw error;
        });
      }) as typeof client.query;
      let result: T;
      try {
        result = await work(client);
        await started;
      } finally {
        // The pool hands the client out again with pg's own query.
        delete (client as Partial<pg.PoolClient>).query;
      }
      await (committed ?? client.query("commit"));
      return result;
    } catch (error) {
      // A commit already sent has rolled the failed transaction back.
      await (committed ?? client.query("rollback")).catch(() => {});
      throw error;
    } finally {
      unwatch?.();
      // A connection the budget closed leaves the pool.
      client.release(rowBytes?.exceeded ? rowBytes.refusal() : undefined);
    }
  };
}

// Clocks differ a little, and SQL rounds exp to the second.
const CLOCK_TOLERANCE_SECONDS = 60;

const invalid = (message: string) => new HttpError(401, "INVALID_TOKEN", message);

/** The caller a verified token names, with the session SQL will check. */
function callerFromClaims(claims: jwt.JwtPayload, algorithm: string, config: Config): Caller {
  const userId = String(claims.user_id ?? "");
  if (!DATABASE_ID.test(userId) || typeof claims.exp !== "number") throw invalid("The token lacks a valid user_id or exp claim.");
  // The role comes from the database; a claim naming any other role is a forgery.
  if (claims.role !== undefined && !SIGNED_IN_ROLES.has(String(claims.role))) throw invalid("The token claims a role it may not use.");
  const now = Math.floor(Date.now() / 1000);
  const issuedAt = typeof claims.iat === "number" ? claims.iat : null;
  // Revocation ends the tokens issued before it: one dated later would outlive it.
  if (issuedAt !== null && issuedAt > now + CLOCK_TOLERANCE_SECONDS) {
    throw new HttpError(401, "TOKEN_ISSUED_IN_FUTURE", `The token's iat is in the future (more than ${CLOCK_TOLERANCE_SECONDS} s ahead of this server's clock); sign in again.`);
  }
  if (claims.exp - Math.min(now, issuedAt ?? now) > config.jwtMaxLifetimeSeconds + CLOCK_TOLERANCE_SECONDS) {
    throw invalid(`The token lives longer than the ${config.jwtMaxLifetimeSeconds} seconds accepted (JWT_MAX_LIFETIME).`);
  }
  if (algorithm === "RS256") {
    if (claims.iss !== config.jwtIssuer) throw invalid("The token is not from the identity provider's issuer (JWT_ISSUER).");
    if (issuedAt === null) throw invalid("The token lacks an iat claim.");
    return { userId, session: { generation: null, issuedAt, expiresAt: claims.exp } };
  }
  if (claims.iss !== TOKEN_ISSUER || !Number.isInteger(claims.token_generation)) {
    throw invalid("The token was not issued by prompter; sign in again.");
  }
  return { userId, session: { generation: claims.token_generation, issuedAt, expiresAt: claims.exp } };
}

/**
 * Requests without an Authorization header go on as anonymous; any header that
 * is not a valid bearer token is refused with 401 (and one of a session that
 * has ended, by the session check in SQL).
 */
export function authenticate(config: Config): RequestHandler {
  const algorithms: Algorithm[] = config.jwtPublicKey ? ["HS256", "RS256"] : ["HS256"];
  // Key objects made once: given a string, jsonwebtoken first tries (and fails)
  // to read it as a public key on every request, which costs more than the HMAC.
  const secretKey = createSecretKey(Buffer.from(config.jwtSecret));
  const publicKey = config.jwtPublicKey ? createPublicKey(config.jwtPublicKey) : undefined;
  const verify = expressjwt({
    // The key follows the token's algorithm, and jsonwebtoken checks the key's type
    // against it, so an RS256 public key can never be used as an HS256 secret.
    secret: (req, token) => {
      (req as Request & { tokenAlgorithm?: string }).tokenAlgorithm = token?.header.alg;
      return (token?.header.alg === "RS256" && publicKey) || secretKey;
    },
    algorithms,
    audience: TOKEN_AUDIENCE,
    credentialsRequired: true,
  });
  const verified = new VerifiedTokens();
  const accept = (req: Request, res: Response, next: NextFunction, claims: jwt.JwtPayload, algorithm: string) => {
    try {
      setCaller(req, callerFromClaims(claims, algorithm, config));
    } catch (failure) {
      return refuse(res, failure, next);
    }
    next();
  };
  return (req, res, next) => {
    const header = req.headers.authorization;
    if (header === undefined) return next();
    const known = verified.get(header);
    if (known) return accept(req, res, next, known.claims, known.algorithm);
    verify(req, res, (error?: unknown) => {
      if (error) return refuse(res, error, next);
      const claims = (req as JWTRequest).auth!;
      const algorithm = (req as Request & { tokenAlgorithm?: string }).tokenAlgorithm ?? "";
      verified.remember(header, claims, algorithm);
      accept(req, res, next, claims, algorithm);
    });
  };
}

/**
 * Tokens whose signature and claims were verified, by Authorization header: a
 * client sends the same token with request after request, and checking its
 * signature again costs the gateway more than the rest of authenticating it.
 * Only the exact header verified before matches, and only until the token's
 * exp; whether its session still holds is decided in SQL on every transaction.
 * The oldest are forgotten first.
 */
class VerifiedTokens {
  private static readonly MAX_TOKENS = 10_000;
  private readonly tokens = new Map<string, { claims: jwt.JwtPayload; algorithm: string }>();

  get(header: string) {
    const known = this.tokens.get(header);
    if (known && known.claims.exp! > Date.now() / 1000) return known;
    if (known) this.tokens.delete(header);
    return undefined;
  }

  remember(header: string, claims: jwt.JwtPayload, algorithm: string): void {
    if (this.tokens.size >= VerifiedTokens.MAX_TOKENS) this.tokens.delete(this.tokens.keys().next().value!);
    this.tokens.set(header, { claims, algorithm });
  }
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
