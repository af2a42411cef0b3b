// What one GraphQL operation may ask for, checked before any SQL runs: page
// sizes on every connection (with a default when none is given), aliases,
// depth, tokens and estimated cost (GraphQL Armor's validation rules), and the
// size of the answer. Each refusal carries a code naming the limit.
import { costLimitRule } from "@escape.tech/graphql-armor-cost-limit";
import { maxAliasesRule } from "@escape.tech/graphql-armor-max-aliases";
import { maxDepthRule } from "@escape.tech/graphql-armor-max-depth";
import { AsyncLocalStorage } from "node:async_hooks";
import type { RequestHandler } from "express";
import type { GraphileConfig } from "graphile-config";
import { access, constant, lambda, SafeError, type Step } from "postgraphile/grafast";
import { GraphQLError, Kind, TokenKind, type Token, type ValidationContext, type ValidationRule } from "postgraphile/graphql";
import type { Config } from "../config.ts";

export type GraphqlLimits = Config["graphqlLimits"];

function limitError(code: string, message: string, limit: number): GraphQLError {
  return new GraphQLError(message, { extensions: { code, limit } });
}

// Armor's rules throw their error (for envelop); here each is reported as a
// validation error with our code, so the other rules still run and nothing executes.
function armored(code: string, limit: number, make: (reject: (context: ValidationContext | null, error: GraphQLError) => void) => ValidationRule): ValidationRule {
  return make((context, error) => context?.reportError(limitError(code, error.message.replace(/^Syntax Error: /, ""), limit)));
}

// GraphQL's own parser can stop at a number of tokens, but grafserv parses
// without that option; the document keeps its tokens linked, so they are counted here.
function maxTokensRule(maxTokens: number): ValidationRule {
  return (context) => {
    let count = 0;
    for (let token: Token | null | undefined = context.getDocument().loc?.startToken; token && token.kind !== TokenKind.EOF; token = token.next) {
      if (++count > maxTokens) {
        context.reportError(limitError("GRAPHQL_TOO_MANY_TOKENS", `Token limit of ${maxTokens} exceeded.`, maxTokens));
        break;
      }
    }
    return {};
  };
}

/** A page size given as a literal is refused here; one given in a variable, when the field is planned. */
function maxPageSizeRule(maxPageSize: number, paged: PagedFields): ValidationRule {
  return (context) => ({
    Argument(node) {
      const parent = context.getParentType();
      const field = context.getFieldDef();
      const isPageSize = (node.name.value === "first" || node.name.value === "last") && parent && field && paged.has(fieldKey(parent.name, field.name));
      if (isPageSize && node.value.kind === Kind.INT && Number(node.value.value) > maxPageSize) {
        context.reportError(pageSizeError(node.name.value, Number(node.value.value), maxPageSize));
      }
    },
  });
}

function pageSizeError(argument: string, value: number, maxPageSize: number): GraphQLError {
  return limitError(
    "GRAPHQL_PAGE_SIZE_TOO_LARGE",
    `\`${argument}: ${value}\` is more than the maximum page size of ${maxPageSize}; page with \`after\`, or request an export to get everything.`,
    maxPageSize,
  );
}

/** The connection fields whose `first`/`last` the page size plugin took over ("Type.field"), and whether they page backwards. */
type PagedFields = Map<string, { backwards: boolean }>;
const fieldKey = (typeName: string, fieldName: string) => `${typeName}.${fieldName}`;

type ConnectionLike = Step & { setFirst($first: Step): void; setLast($last: Step): void };
type FieldArgs = { getRaw(name: string): Step };

/**
 * Connection fields read `first`/`last` themselves: a missing size becomes the
 * default page size (forwards, or backwards after `before`), a size over the
 * maximum is refused before the field's query is sent.
 */
function pageSizePlugin(limits: GraphqlLimits, paged: PagedFields): GraphileConfig.Plugin {
  const { defaultPageSize, maxPageSize } = limits;
  const sizes = ([first, last, before]: [number | null, number | null, unknown]) => {
    for (const [name, value] of [["first", first], ["last", last]] as const) {
      if (value != null && value > maxPageSize) {
        const error = pageSizeError(name, value, maxPageSize);
        throw new SafeError(error.message, error.extensions);
      }
    }
    if (first != null || last != null) return { first, last };
    return before == null ? { first: defaultPageSize, last: null } : { first: null, last: defaultPageSize };
  };
  // Fields get their plan before their arguments: the plan, wrapped first, looks
  // up at planning time whether the arguments hook took over the field's sizes.
  return {
    name: "PrompterPageSizePlugin",
    version: "1.0.0",
    after: ["PgFirstLastBeforeAfterArgsPlugin"],
    schema: {
      hooks: {
        GraphQLObjectType_fields_field(field, _build, context) {
          const plan = field.plan;
          if (!context.scope.isPgFieldConnection || !plan) return field;
          const key = fieldKey(context.Self.name, context.scope.fieldName);
          return {
            ...field,
            plan(...planArgs: Parameters<typeof plan>) {
              const $connection = (plan as (...a: unknown[]) => ConnectionLike)(...planArgs);
              const pagination = paged.get(key);
              if (!pagination) return $connection;
              const fieldArgs = planArgs[1] as unknown as FieldArgs;
              const $sizes = lambda(
                pagination.backwards
                  ? [fieldArgs.getRaw("first"), fieldArgs.getRaw("last"), fieldArgs.getRaw("before")]
                  : [fieldArgs.getRaw("first"), constant(null), constant(null)],
                sizes as never,
              );
              $connection.setFirst(access($sizes, "first"));
              $connection.setLast(access($sizes, "last"));
              return $connection;
            },
          } as typeof field;
        },
        GraphQLObjectType_fields_field_args(args, _build, context) {
          const pageArgs = args as Record<string, { applyPlan?: unknown }>;
          if (!context.scope.isPgFieldConnection || !pageArgs.first?.applyPlan) return args;
          for (const name of ["first", "last"]) if (pageArgs[name]) delete pageArgs[name].applyPlan;
          paged.set(fieldKey(context.Self.name, context.scope.fieldName), { backwards: Boolean(pageArgs.last) });
          return args;
        },
      },
    },
  };
}

export function graphqlLimitsPlugins(limits: GraphqlLimits): GraphileConfig.Plugin[] {
  const paged: PagedFields = new Map();
  const rules: ValidationRule[] = [
    maxTokensRule(limits.maxTokens),
    maxPageSizeRule(limits.maxPageSize, paged),
    armored("GRAPHQL_TOO_MANY_ALIASES", limits.maxAliases, (reject) =>
      maxAliasesRule({ n: limits.maxAliases, onReject: [reject], propagateOnRejection: false })),
    armored("GRAPHQL_TOO_DEEP", limits.maxDepth, (reject) =>
      maxDepthRule({ n: limits.maxDepth, onReject: [reject], propagateOnRejection: false })),
    armored("GRAPHQL_TOO_COSTLY", limits.maxCost, (reject) =>
      costLimitRule({ maxCost: limits.maxCost, onReject: [reject], propagateOnRejection: false })),
  ];
  const validationPlugin: GraphileConfig.Plugin = {
    name: "PrompterValidationLimitsPlugin",
    version: "1.0.0",
    grafserv: {
      middleware: {
        setPreset(next, event) {
          event.validationRules.push(...rules);
          return next();
        },
      },
    },
  };
  return [pageSizePlugin(limits, paged), validationPlugin];
}

/** What errors of the operation say about its HTTP answer. */
interface AnswerNotes {
  retryAfterSeconds?: number;
  status?: number;
}
const answerNotes = new AsyncLocalStorage<AnswerNotes>();

/**
 * Called by maskError for an error the client may retry: the answer gets
 * Retry-After, and 503 when the server was too busy to start on it.
 */
export function noteRetryable(retryAfterSeconds: number, busy: boolean): void {
  const notes = answerNotes.getStore();
  if (!notes) return;
  notes.retryAfterSeconds = Math.max(notes.retryAfterSeconds ?? 0, retryAfterSeconds);
  if (busy) noteAnswerStatus(503);
}

/** Called by maskError for an error that decides the whole answer's status (the first such wins). */
export function noteAnswerStatus(status: number): void {
  const notes = answerNotes.getStore();
  if (notes) notes.status ??= status;
}

/**
 * The answer grafserv writes in one piece is replaced, beyond the cap, by an
 * error: the client learns to ask for less rather than the gateway sending it.
 * A retryable failure gets its Retry-After, and the status its errors decided
 * (503 when the server was busy, 401 when the session had ended).
 */
export function graphqlResponses(maxBytes: number): RequestHandler {
  return (_req, res, next) => {
    const notes: AnswerNotes = {};
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => typeof res;
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as (...args: unknown[]) => typeof res;
    let head: unknown[] | undefined;
    const restore = () => {
      res.writeHead = writeHead as typeof res.writeHead;
      res.write = write as typeof res.write;
      res.end = end as typeof res.end;
    };
    res.writeHead = ((...args: unknown[]) => {
      head = args;
      return res;
    }) as typeof res.writeHead;
    // A streamed answer (incremental delivery) goes out as it comes.
    res.write = ((...args: unknown[]) => {
      restore();
      if (head) writeHead(...head);
      return write(...args);
    }) as typeof res.write;
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      restore();
      if (Buffer.isBuffer(chunk) && chunk.length > maxBytes) {
        const body = JSON.stringify({
          errors: [{
            message: `The answer would be ${chunk.length} bytes, more than the limit of ${maxBytes}; ask for fewer rows or fields, or request an export.`,
            extensions: { code: "GRAPHQL_RESPONSE_TOO_LARGE", limit: maxBytes },
          }],
        });
        res.locals.responseTooLarge = chunk.length;
        writeHead(413, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(body) });
        return end(body);
      }
      if (notes.retryAfterSeconds !== undefined) res.setHeader("Retry-After", String(notes.retryAfterSeconds));
      if (notes.status !== undefined && head) head[0] = notes.status;
      if (head) writeHead(...head);
      return end(chunk, ...rest);
    }) as typeof res.end;
    answerNotes.run(notes, next);
  };
}
