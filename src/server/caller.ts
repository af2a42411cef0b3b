// Who a request acts as, once authenticated: shared by the modules that
// authenticate (auth.ts, download links), log (request-log.ts) and serve, so
// none of them has to import another for it.
import type { Request } from "express";

export interface Caller {
  role: "app_user" | "app_admin";
  userId: string;
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
