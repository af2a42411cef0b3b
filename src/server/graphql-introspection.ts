// In production, only signed-in callers may read the schema through
// introspection: an anonymous one would otherwise get megabytes of answer for
// a few bytes of query, as often as it likes. The schema is no secret (the
// README and an account show it); the cost is what is refused.
import type { GraphileConfig } from "graphile-config";
import { BREAK, GraphQLError, visit, type DocumentNode } from "postgraphile/graphql";
import { callerOf } from "./caller.ts";
import { noteAnswerStatus } from "./graphql-answers.ts";

const INTROSPECTION_FIELDS = new Set(["__schema", "__type"]);

// grafserv hands every request with the same text the same parsed document.
const introspecting = new WeakMap<DocumentNode, boolean>();

function introspects(document: DocumentNode): boolean {
  let found = introspecting.get(document);
  if (found === undefined) {
    found = false;
    // Fragments included: a field spread from one runs all the same.
    visit(document, {
      Field(node) {
        if (!INTROSPECTION_FIELDS.has(node.name.value)) return undefined;
        found = true;
        return BREAK;
      },
    });
    introspecting.set(document, found);
  }
  return found;
}

/** With `production`, refuses `__schema` and `__type` to anonymous callers (403 GRAPHQL_INTROSPECTION_FORBIDDEN); `__typename` stays. */
export function anonymousIntrospectionPlugin(production: boolean): GraphileConfig.Plugin {
  return {
    name: "PrompterAnonymousIntrospectionPlugin",
    version: "1.0.0",
    grafast: {
      middleware: {
        execute(next, { args }) {
          const req = args.requestContext?.expressv4?.req;
          if (!production || !req || callerOf(req) || !introspects(args.document)) return next();
          noteAnswerStatus(403);
          return {
            errors: [new GraphQLError("Introspection is for signed-in callers in production: send a bearer token, or read the schema from the README.", {
              extensions: { code: "GRAPHQL_INTROSPECTION_FORBIDDEN" },
            })],
          };
        },
      },
    },
  };
}
