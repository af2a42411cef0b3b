// The estimated cost of a GraphQL operation, computed from the fields it will
// run: fields are collected as GraphQL executes them (fragments, named or
// inline, merged into their parent; one response key, one field; @skip and
// @include applied), and arguments and variables are coerced as GraphQL does
// (a variable's default counts like a value given), so every spelling of one
// query costs the same.
import type { GraphileConfig } from "graphile-config";
import {
  getArgumentValues, getDirectiveValues, getNamedType, getVariableValues, GraphQLIncludeDirective, GraphQLSkipDirective,
  isAbstractType, isObjectType, Kind,
  type DocumentNode, type FieldNode, type FragmentDefinitionNode, type GraphQLCompositeType, type GraphQLField, type GraphQLObjectType,
  type GraphQLSchema, type SelectionSetNode,
} from "postgraphile/graphql";

/** What the schema says about cost ("Type.field" keys), gathered while it is built. */
export interface CostFacts {
  /** The connection fields whose `first`/`last` the page size plugin took over, and whether they page backwards. */
  paged: Map<string, { backwards: boolean }>;
  /** Aggregates (distinctCount, min, max...) over text-like columns: each reads every matching value. */
  textAggregates: Set<string>;
}

export const fieldKey = (typeName: string, fieldName: string) => `${typeName}.${fieldName}`;

export interface CostLimits {
  defaultPageSize: number;
  maxPageSize: number;
}

// GraphQL Armor's weights: an object field costs 2, a scalar 1, what is inside
// a field 1.5 times what it costs alone, and a page multiplies its content.
const OBJECT_COST = 2;
const SCALAR_COST = 1;
const DEPTH_FACTOR = 1.5;

/**
 * The estimated cost of the operation as it will run: Armor's formula, with
 * the page sizes that will apply (literal, in a variable, a variable's
 * default, or the default page size), and an aggregate over a text-like
 * column charged as a full page of that column: it reads every matching value
 * whatever the page size. Variables that do not coerce cost nothing here:
 * GraphQL refuses the operation before it runs.
 */
export function estimatedCost(
  schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined, rawVariables: Record<string, unknown>,
  limits: CostLimits, facts: CostFacts,
): number {
  const operation = document.definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION && (!operationName || d.name?.value === operationName));
  if (operation?.kind !== Kind.OPERATION_DEFINITION) return 0;
  const root = schema.getRootType(operation.operation);
  if (!root) return 0;
  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], rawVariables);
  if (coerced.errors) return 0;
  const variables = coerced.coerced;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);

  const included = (node: FieldNode | SelectionSetNode["selections"][number]) =>
    getDirectiveValues(GraphQLSkipDirective, node, variables)?.if !== true &&
    getDirectiveValues(GraphQLIncludeDirective, node, variables)?.if !== false;
  const applies = (typeName: string | undefined, type: GraphQLObjectType) => {
    if (typeName === undefined) return true;
    const condition = schema.getType(typeName);
    if (!condition) return false;
    if (condition === type) return true;
    return isAbstractType(condition) && schema.isSubType(condition, type);
  };
  /** GraphQL's CollectFields: the fields a selection runs on `type`, by response key. */
  const collect = (type: GraphQLObjectType, selectionSets: readonly SelectionSetNode[]): Map<string, FieldNode[]> => {
    const fields = new Map<string, FieldNode[]>();
    const visitedFragments = new Set<string>();
    const walk = (selectionSet: SelectionSetNode) => {
      for (const selection of selectionSet.selections) {
        if (!included(selection)) continue;
        if (selection.kind === Kind.FIELD) {
          const key = selection.alias?.value ?? selection.name.value;
          const same = fields.get(key);
          if (same) same.push(selection);
          else fields.set(key, [selection]);
        } else if (selection.kind === Kind.INLINE_FRAGMENT) {
          if (applies(selection.typeCondition?.name.value, type)) walk(selection.selectionSet);
        } else {
          const name = selection.name.value;
          const fragment = fragments.get(name);
          // Spread twice, a fragment adds nothing the second time; a cycle is GraphQL's to refuse.
          if (!fragment || visitedFragments.has(name)) continue;
          visitedFragments.add(name);
          if (applies(fragment.typeCondition.name.value, type)) walk(fragment.selectionSet);
        }
      }
    };
    for (const selectionSet of selectionSets) walk(selectionSet);
    return fields;
  };
  const pageSize = (type: GraphQLObjectType, field: GraphQLField<unknown, unknown>, node: FieldNode) => {
    const pagination = facts.paged.get(fieldKey(type.name, field.name));
    if (!pagination) return 1;
    const args = getArgumentValues(field, node, variables);
    const sizes = [args.first, pagination.backwards ? args.last : null].filter((size): size is number => typeof size === "number");
    // With both, PostgreSQL returns the last `last` of the first `first`.
    return sizes.length ? Math.min(...sizes) : limits.defaultPageSize;
  };
  /** What a selection costs on a field of type `type`: on an interface or union, its costliest possible type. */
  const costIn = (type: GraphQLCompositeType, selectionSets: readonly SelectionSetNode[], depth: number): number => {
    if (depth > 100) return Number.POSITIVE_INFINITY; // far past GRAPHQL_MAX_DEPTH, which refuses it anyway
    const types = isObjectType(type) ? [type] : schema.getPossibleTypes(type);
    return Math.max(0, ...types.map((objectType) => costOn(objectType, selectionSets, depth)));
  };
  const costOn = (type: GraphQLObjectType, selectionSets: readonly SelectionSetNode[], depth: number): number => {
    let cost = 0;
    for (const nodes of collect(type, selectionSets).values()) {
      const node = nodes[0];
      const field = type.getFields()[node.name.value];
      const named = field && getNamedType(field.type);
      if (!field || !named || !(isObjectType(named) || isAbstractType(named))) {
        cost += field && facts.textAggregates.has(fieldKey(type.name, field.name)) ? limits.maxPageSize * SCALAR_COST : SCALAR_COST;
        continue;
      }
      const selections = nodes.flatMap((n) => (n.selectionSet ? [n.selectionSet] : []));
      const inside = OBJECT_COST + DEPTH_FACTOR * costIn(named, selections, depth + 1);
      cost += inside * pageSize(type, field, node);
    }
    return cost;
  };
  return costOn(root, [operation.selectionSet], 0);
}

// Variable-width types whose values can be as large as a row allows.
const TEXT_LIKE = new Set(["text", "varchar", "bpchar", "citext", "name", "json", "jsonb", "xml", "bytea"]);

interface CodecLike {
  name: string;
  arrayOfCodec?: CodecLike;
  domainOfCodec?: CodecLike;
  attributes?: Record<string, { codec: CodecLike }>;
}

function isTextLike(codec: CodecLike): boolean {
  if (codec.arrayOfCodec || codec.attributes) return true;
  if (codec.domainOfCodec) return isTextLike(codec.domainOfCodec);
  return TEXT_LIKE.has(codec.name);
}

/** Records the aggregate fields (pg-aggregates) over text-like columns in `facts.textAggregates`. */
export function textAggregatesPlugin(facts: CostFacts): GraphileConfig.Plugin {
  return {
    name: "PrompterTextAggregatesPlugin",
    version: "1.0.0",
    schema: {
      hooks: {
        GraphQLObjectType_fields_field(field, build, context) {
          const scope = context.scope as typeof context.scope & {
            isPgConnectionAggregateField?: boolean;
            pgTypeResource?: { codec: CodecLike & { attributes?: Record<string, { codec: CodecLike }> } };
          };
          const codec = scope.pgTypeResource?.codec;
          if (!scope.isPgConnectionAggregateField || !codec?.attributes) return field;
          for (const [attributeName, attribute] of Object.entries(codec.attributes as Record<string, { codec: CodecLike }>)) {
            const name = build.inflection.attribute({ attributeName, codec: codec as never });
            if (name === scope.fieldName && isTextLike(attribute.codec)) facts.textAggregates.add(fieldKey(context.Self.name, name));
          }
          return field;
        },
      },
    },
  };
}
