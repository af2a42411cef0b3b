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
