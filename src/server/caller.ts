// Who a request acts as, once authenticated: shared by the modules that
// authenticate (auth.ts, download links), log (request-log.ts) and serve, so
// none of them has to import another for it.
import type { Request } from "express";

export type SignedInRole = "app_user" | "app_admin";

/** A bearer token's session: which of the user's token generations it belongs to, and when it was issued. */
export interface TokenSession {
  /** Ours carry one; an identity provider's tokens do not (they are checked against their iat instead). */
  generation: number | null;
  issuedAt: number | null;
  /** Its exp, in seconds since the epoch. */
  expiresAt: number;
}

export interface Caller {
  userId: string;
  /**
   * A bearer token's caller has a session, which SQL checks in each of the
   * request's transactions and which decides the role; `role` is then what it
   * decided last. A signed download link's caller has the role the link was issued for.
   */
  session?: TokenSession;
  role?: SignedInRole;
}

/** A bigint identity as text: what user and export ids look like on the wire. */
export const DATABASE_ID = /^[1-9]\d{0,17}$/;

/** The verified caller, or undefined for anonymous requests. */
export function callerOf(req: Request): Caller | undefined {
  return (req as Request & { caller?: Caller }).caller;
}

export function setCaller(req: Request, caller: Caller): void {
  (req as Request & { caller?: Caller }).caller = caller;
}

/**
 * Sessions SQL has accepted lately, by Authorization header, until the token's
 * exp. Admission counts a request in its user's lane only once its session is
 * known good: a revoked or stolen-then-revoked token's requests wait in a lane
 * of their own, so they cannot hold its user's slots.
 */
const goodSessions = new Map<string, number>();
const MAX_GOOD_SESSIONS = 10_000;

/** Called with the answer of each transaction's session check. */
export function recordSessionCheck(req: Request, good: boolean): void {
  const header = req.headers.authorization;
  if (!header) return;
  if (!good) {
    goodSessions.delete(header);
    return;
  }
  const expiresAt = callerOf(req)?.session?.expiresAt;
  if (expiresAt === undefined) return;
  if (goodSessions.size >= MAX_GOOD_SESSIONS) goodSessions.delete(goodSessions.keys().next().value!);
  goodSessions.set(header, expiresAt * 1000);
}

function sessionKnownGood(header: string): boolean {
  const until = goodSessions.get(header);
  if (until !== undefined && until > Date.now()) return true;
  goodSessions.delete(header);
  return false;
}

/**
 * Whom a request counts against: its user; a token SQL has not yet accepted, by
 * itself; an anonymous request, its client address as TRUST_PROXY resolves it
 * (req.ip), never the address of the proxy in front.
 */
export function admissionKey(req: Request): string {
  const caller = callerOf(req);
  if (!caller) return `address ${req.ip}`;
  const header = req.headers.authorization;
  if (caller.session && header && !sessionKnownGood(header)) return `token ${header}`;
  return `user ${caller.userId}`;
}
