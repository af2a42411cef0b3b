// In production, only signed-in callers may read the whole schema through
// introspection (`__schema`): an anonymous one would otherwise get its
// hundreds of kilobytes for a few bytes of query, as often as it likes. The
// schema is no secret (the README and an account show it); the cost is what is
// refused. `__type(name:)`, one type at a time, stays (the GraphQL-over-HTTP
// audit uses it), and like any answer is charged by its size.
import type { GraphileConfig } from "graphile-config";
import { BREAK, GraphQLError, visit, type DocumentNode } from "postgraphile/graphql";
import { callerOf } from "./caller.ts";
import { noteAnswerStatus } from "./graphql-answers.ts";


// grafserv hands every request with the same text the same parsed document.
const introspecting = new WeakMap<DocumentNode, boolean>();

function introspects(document: DocumentNode): boolean {
  let found = introspecting.get(document);
  if (found === undefined) {
    found = false;
    // Fragments included: a field spread from one runs all the same.
    visit(document, {
      Field(node) {
        if (node.name.value !== "__schema") return undefined;
        found = true;
        return BREAK;
      },
    });
    introspecting.set(document, found);
  }
  return found;
}

/** With `production`, refuses `__schema` to anonymous callers (403 GRAPHQL_INTROSPECTION_FORBIDDEN). */
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
            errors: [new GraphQLError("The whole schema (__schema) is for signed-in callers in production: send a bearer token.", {
              extensions: { code: "GRAPHQL_INTROSPECTION_FORBIDDEN" },
            })],
          };
        },
      },
    },
  };
}
