// What one GraphQL operation may ask for, checked before any SQL runs: page
// sizes on every connection (with a default when none is given), aliases,
// depth and tokens (GraphQL Armor's validation rules), and estimated cost
// (graphql-cost.ts). Each refusal carries a code naming the limit. Costly
// operations and sign-ins also take turns gateway-wide and per caller, and a
// caller pays for the bytes its answers read (answer-budget.ts).
import { maxAliasesRule } from "@escape.tech/graphql-armor-max-aliases";
import { maxDepthRule } from "@escape.tech/graphql-armor-max-depth";
import type { Request, Response } from "express";
import type { GraphileConfig } from "graphile-config";
import { access, constant, lambda, SafeError, type Step } from "postgraphile/grafast";
import {
  GraphQLError, Kind, TokenKind, visit,
  type DocumentNode, type SelectionSetNode, type Token, type ValidationContext, type ValidationRule,
} from "postgraphile/graphql";
import type { Config } from "../config.ts";
import { goneSignal, Lanes } from "./admission.ts";
import { callerOf } from "./caller.ts";
import { HttpError, serverBusy } from "./errors.ts";
import { jsonBytes, noteAnswerStatus, tooLarge } from "./graphql-answers.ts";
import { estimatedCost, fieldKey, textAggregatesPlugin, type CostFacts } from "./graphql-cost.ts";

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

type PagedFields = CostFacts["paged"];

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

/**
 * `credentialFields`: the mutations that check a password (bcrypt) or create an account.
 * `maxWaitSeconds`: how long an operation waits its turn before 503 SERVER_BUSY.
 */
export function graphqlLimitsPlugins(limits: GraphqlLimits, credentialFields: ReadonlySet<string>, maxWaitSeconds: number): GraphileConfig.Plugin[] {
  const facts: CostFacts = { paged: new Map(), textAggregates: new Set() };
  const paged = facts.paged;
  const rules: ValidationRule[] = [
    maxTokensRule(limits.maxTokens),
    maxPageSizeRule(limits.maxPageSize, paged),
    armored("GRAPHQL_TOO_MANY_ALIASES", limits.maxAliases, (reject) =>
      maxAliasesRule({ n: limits.maxAliases, onReject: [reject], propagateOnRejection: false })),
    armored("GRAPHQL_TOO_DEEP", limits.maxDepth, (reject) =>
      maxDepthRule({ n: limits.maxDepth, onReject: [reject], propagateOnRejection: false })),
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
  return [pageSizePlugin(limits, paged), textAggregatesPlugin(facts), validationPlugin, costPlugin(limits, facts, credentialFields, maxWaitSeconds)];
}

/**
 * Refuses an operation with more than one sign-in, registration or password
 * change (400 ONE_SIGN_IN_PER_REQUEST), and one whose estimated cost is over GRAPHQL_MAX_COST, and
 * makes the costly ones take turns gateway-wide: together the operations
 * running may cost GRAPHQL_MAX_COST (one operation as costly as allowed, or
 * several smaller ones); cheap ones (under GRAPHQL_LIGHT_COST) never wait.
 * Sign-ins and password changes (bcrypt, in PostgreSQL) run
 * SIGN_IN_MAX_CONCURRENT at a time, one per caller in line for them. Whatever one caller sends, others' light
 * requests find the event loop, the pool and the database's CPU free enough;
 * an operation that waited too long is answered 503 SERVER_BUSY with Retry-After.
 */
function costPlugin(limits: GraphqlLimits, facts: CostFacts, credentialFields: ReadonlySet<string>, maxWaitSeconds: number): GraphileConfig.Plugin {
  const costly = new Lanes(limits.maxCost, Number.MAX_SAFE_INTEGER, maxWaitSeconds);
  const signIns = new Lanes(limits.signInMaxConcurrent, Number.MAX_SAFE_INTEGER, maxWaitSeconds);
  // One sign-in per caller at a time joins the gateway-wide line: a caller's many
  // at once would otherwise fill it, and everyone else's would wait behind them all.
  const signInsPerCaller = new Lanes(1, Number.MAX_SAFE_INTEGER, maxWaitSeconds);
  const refused = (error: GraphQLError) => ({ errors: [error] });
  const pace = new CostPace(limits.maxCost, limits.costPerSecond);
  // One unit of cost is this many bytes from PostgreSQL: an operation that reads
  // its whole byte budget costs as much as the costliest operation allowed.
  const bytesPerCost = limits.maxResponseBytes / limits.maxCost;
  /**
   * Runs the operation, refuses its answer when it would be too large, and
   * charges the caller what it came to beyond its estimate: the bytes
   * PostgreSQL sent or those of the answer, whichever is more.
   */
  const runSized = async <T>(key: string, cost: number, context: Partial<Grafast.Context>, res: Response, result: PromiseLike<T> | T) => {
    let written = 0;
    try {
      const { answer, bytes } = sizedAnswer(await result, limits.maxResponseBytes, res);
      written = bytes;
      return answer;
    } finally {
      const beyond = Math.max(context.rowBytes?.read ?? 0, written) / bytesPerCost - cost;
      if (beyond > 0) pace.charge(key, beyond);
    }
  };
  return {
    name: "PrompterCostPlugin",
    version: "1.0.0",
    grafast: {
      middleware: {
        async execute(next, { args }) {
          const credentials = credentialUse(args.document, credentialFields);
          // Aliases would otherwise turn one request into a batch of password guesses (each one bcrypt) or of new accounts.
          if (credentials.mostPerOperation > 1) {
            noteAnswerStatus(400);
            return refused(new GraphQLError("One sign-in, registration or password change per request: send each in a request of its own.", {
              extensions: { code: "ONE_SIGN_IN_PER_REQUEST" },
            }));
          }
          const cost = estimatedCost(args.schema, args.document, args.operationName, (args.variableValues ?? {}) as Record<string, unknown>, limits, facts);
          if (cost > limits.maxCost) {
            return refused(limitError("GRAPHQL_TOO_COSTLY", `Query Cost limit of ${limits.maxCost} exceeded, found ${Math.ceil(cost)}.`, limits.maxCost));
          }
          const signingIn = credentials.signsIn;
          const res = args.requestContext?.expressv4?.res;
          const req = args.requestContext?.expressv4?.req;
          if (!res || !req) return next();
          const key = callerKey(req);
          const lanes = [
            ...(cost >= limits.lightCost ? [costly.acquire.bind(costly, "operations", cost)] : []),
            ...(signingIn ? [signInsPerCaller.acquire.bind(signInsPerCaller, key, 1), signIns.acquire.bind(signIns, "sign-ins", 1)] : []),
          ];
          // A caller still paying for answers larger than estimated (see runSized) waits even with a light operation.
          const paced = cost >= limits.lightCost ? cost : signingIn ? limits.costPerSecond / limits.signInsPerSecond : pace.owes(key) ? cost : 0;
          const run = () => runSized(key, cost, args.contextValue as Partial<Grafast.Context>, res as Response, next());
          if (!lanes.length && !paced) return run();
          const gone = goneSignal(res);
          if (paced) {
            // The caller's costly operations and sign-ins are paced: its turn comes when it has saved up their cost.
            // Past CALLER_MAX_WAIT it is refused, but only then: a refusal at once would be retried at once.
            const waitMs = pace.reserve(key, paced);
            const maxWaitMs = maxWaitSeconds * 1000;
            if (waitMs > 0 && !(await delay(Math.min(waitMs, maxWaitMs), gone))) {
              pace.refund(key, paced);
              return refused(new GraphQLError("The client went away."));
            }
            if (waitMs > maxWaitMs) {
              pace.refund(key, paced);
              const tooFast = new HttpError(429, "GRAPHQL_COST_RATE",
                `At most ${limits.costPerSecond} of estimated cost (or ${limits.signInsPerSecond} sign-ins) a second per caller; try again later or ask for less.`,
                { retryAfterSeconds: Math.ceil((waitMs - maxWaitMs) / 1000) });
              return refused(new GraphQLError(tooFast.message, { originalError: tooFast }));
            }
          }
          const releases: (() => void)[] = [];
          for (const acquire of lanes) {
            const release = await acquire(gone);
            if (!release) {
              for (const r of releases) r();
              pace.refund(key, paced); // nothing ran
              const busy = serverBusy(1);
              return refused(new GraphQLError(busy.message, { originalError: busy }));
            }
            releases.push(release);
          }
          const releaseAll = () => releases.forEach((release) => release());
          // A client that left while waiting: its "close" is past and would never give the turn back.
          if (res.closed) {
            releaseAll();
            return refused(new GraphQLError("The client went away."));
          }
          // Held until the answer is written: building and sending it is most of a costly operation's work here.
          res.once("close", releaseAll);
          return run();
        },
      },
    },
  };
}

/**
 * Per caller, a bucket of cost that fills at `perSecond` up to `capacity` (one
 * operation as costly as allowed); an operation takes its cost from it, going
 * into debt, and waits until the debt is paid.
 */
class CostPace {
  private readonly saved = new Map<string, { cost: number; at: number }>();
  private readonly capacity: number;
  private readonly perMs: number;

  constructor(capacity: number, perSecond: number) {
    this.capacity = capacity;
    this.perMs = perSecond / 1000;
  }

  /** Takes `cost`; answers how long to wait (ms) before running. */
  reserve(key: string, cost: number): number {
    const now = performance.now();
    if (this.saved.size > 10_000) this.forgetFull(now);
    const entry = this.saved.get(key);
    const saved = entry ? Math.min(this.capacity, entry.cost + (now - entry.at) * this.perMs) : this.capacity;
    this.saved.set(key, { cost: saved - cost, at: now });
    return saved >= cost ? 0 : (cost - saved) / this.perMs;
  }

  refund(key: string, cost: number): void {
    const entry = this.saved.get(key);
    if (entry) entry.cost += cost;
  }

  /** Takes `cost` without waiting: the caller's next operations wait for it. */
  charge(key: string, cost: number): void {
    this.reserve(key, cost);
  }

  /** Whether the caller has taken more than it has saved up. */
  owes(key: string): boolean {
    const entry = this.saved.get(key);
    return entry !== undefined && entry.cost + (performance.now() - entry.at) * this.perMs < 0;
  }

  private forgetFull(now: number): void {
    for (const [key, entry] of this.saved) if (entry.cost + (now - entry.at) * this.perMs >= this.capacity) this.saved.delete(key);
  }
}

function callerKey(req: Request): string {
  const caller = callerOf(req);
  return caller ? `user ${caller.userId}` : `address ${req.ip}`;
}

/** Resolves true after `ms`, or false as soon as the client goes away. */
function delay(ms: number, gone: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      gone.removeEventListener("abort", leave);
      resolve(true);
    }, ms);
    const leave = () => {
      clearTimeout(timer);
      resolve(false);
    };
    gone.addEventListener("abort", leave, { once: true });
  });
}

interface CredentialUse {
  /** Any field of the document signs in, registers or changes a password. */
  signsIn: boolean;
  /** The most such fields one operation runs, fragments counted where they are spread. */
  mostPerOperation: number;
}

// grafserv hands every request with the same text the same parsed document.
const credentialUses = new WeakMap<DocumentNode, CredentialUse>();

function credentialUse(document: DocumentNode, credentialFields: ReadonlySet<string>): CredentialUse {
  let use = credentialUses.get(document);
  if (!use) {
    let signsIn = false;
    visit(document, { Field: (node) => void (signsIn ||= credentialFields.has(node.name.value)) });
    const fragments = new Map(document.definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [])));
    const countIn = (selectionSet: SelectionSetNode, seen: ReadonlySet<string>): number => {
      let count = 0;
      for (const selection of selectionSet.selections) {
        if (selection.kind === Kind.FIELD) {
          if (credentialFields.has(selection.name.value)) count++;
          if (selection.selectionSet) count += countIn(selection.selectionSet, seen);
        } else if (selection.kind === Kind.INLINE_FRAGMENT) {
          count += countIn(selection.selectionSet, seen);
        } else {
          // A fragment spread: counted each time it is spread; a cycle is GraphQL's to refuse.
          const fragment = fragments.get(selection.name.value);
          if (fragment && !seen.has(fragment.name.value)) count += countIn(fragment.selectionSet, new Set([...seen, fragment.name.value]));
        }
      }
      return count;
    };
    const counts = document.definitions.map((d) => (d.kind === Kind.OPERATION_DEFINITION ? countIn(d.selectionSet, new Set()) : 0));
    use = { signsIn, mostPerOperation: Math.max(0, ...counts) };
    credentialUses.set(document, use);
  }
  return use;
}

/**
 * An operation's answer measured as JSON before grafserv writes it, and
 * replaced by a 413 refusal when it is over `maxBytes`. PostgreSQL's bytes are
 * capped as they arrive (answer-budget.ts), but the answer can repeat what was
 * read once (aliases of one field are one statement): the data then holds one
 * string many times, which costs nothing until it is written out. `bytes` is
 * its size (counted only to just past `maxBytes` when it is over).
 */
export function sizedAnswer<T>(result: T, maxBytes: number, res: Response): { answer: T | { errors: GraphQLError[] }; bytes: number } {
  if (!result || typeof result !== "object" || !("data" in result) || result.data == null) return { answer: result, bytes: 0 };
  const bytes = jsonBytes(result.data, maxBytes);
  if (bytes <= maxBytes) return { answer: result, bytes };
  noteAnswerStatus(413);
  res.locals.responseTooLarge = bytes;
  const { message, extensions } = tooLarge(maxBytes);
  return { answer: { errors: [new GraphQLError(message, { extensions })] }, bytes };
}
