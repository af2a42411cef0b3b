// A known path asked with a method it does not answer gets 405 and the methods
// it does answer in Allow (RFC 9110 15.5.6), not a 404 that says the path is unknown.
import type { RequestHandler } from "express";
import { HttpError } from "./errors.ts";

/** Call once every method of `route` is declared. */
/** What refuseOtherMethods needs of an express route (its `methods` is not in express's types). */
interface DeclaredRoute {
  all(handler: RequestHandler): unknown;
}

export function refuseOtherMethods(route: DeclaredRoute): void {
  const methods = Object.keys((route as DeclaredRoute & { methods: Record<string, boolean> }).methods).map((method) => method.toUpperCase());
  // express answers HEAD with the GET handler.
  if (methods.includes("GET")) methods.push("HEAD");
  const allow = [...methods, "OPTIONS"].join(", ");
  route.all((req, res) => {
    if (req.method === "OPTIONS") {
      res.set("Allow", allow).status(204).end();
      return;
    }
    throw new HttpError(405, "METHOD_NOT_ALLOWED", `${req.method} is not allowed on ${req.originalUrl.split("?")[0]}; use ${methods.join(" or ")}.`, { headers: { Allow: allow } });
  });
}
