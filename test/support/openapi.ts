// The REST API's contract, enforced on every answer a test receives through
// callRest: the status must be documented for the operation (an unknown path
// 404, a known path with another method 405), the body must match the
// documented schema of its media type, and documented required headers must be
// there. The document is the one the gateway serves, src/server/openapi.json.
import { readFileSync } from "node:fs";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { expect } from "vitest";

interface MediaType {
  schema?: object;
}
interface Header {
  required?: boolean;
  $ref?: string;
}
interface ResponseObject {
  $ref?: string;
  description: string;
  headers?: Record<string, Header>;
  content?: Record<string, MediaType>;
}
interface Operation {
  responses: Record<string, ResponseObject>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components: { responses: Record<string, ResponseObject>; headers: Record<string, Header> };
}

const DOCUMENT_ID = "openapi.json";
const document = JSON.parse(readFileSync(new URL("../../src/server/openapi.json", import.meta.url), "utf8")) as Document;
// OpenAPI 3.1 schemas are JSON Schema 2020-12; the document's other keywords are not schema keywords.
const ajv = new Ajv2020({ strict: false, allErrors: true });
(addFormatsModule as unknown as (ajv: Ajv2020) => void)(ajv);
ajv.addSchema(document, DOCUMENT_ID);

const routes = Object.keys(document.paths).map((template) => ({
  template,
  pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+").replace(/[.]/g, "\\.")}$`),
}));

/** `#/components/...` pointers of the document, resolved (one level, as the document uses them). */
function resolved<T extends { $ref?: string }>(value: T): T {
  if (!value.$ref) return value;
  const [, section, name] = /^#\/components\/(\w+)\/(.+)$/.exec(value.$ref) ?? [];
  return (document.components as unknown as Record<string, Record<string, T>>)[section][name];
}

/** A JSON pointer as a URI fragment. */
const pointer = (...parts: string[]) => parts.map((part) => encodeURIComponent(part.replaceAll("~", "~0").replaceAll("/", "~1"))).join("/");
const validators = new Map<string, ValidateFunction>();
function validatorAt(path: string): ValidateFunction {
  let validate = validators.get(path);
  if (!validate) {
    validate = ajv.compile({ $ref: `${DOCUMENT_ID}#/${path}` });
    validators.set(path, validate);
  }
  return validate;
}

export interface RestAnswer {
  status: number;
  headers: Headers;
  text: string;
}

/** Fails the test when `answer` to `method url` is not what the OpenAPI document describes. */
export function expectToMatchOpenApi(method: string, url: string, answer: RestAnswer): void {
  const path = new URL(url, "http://gateway").pathname;
  const route = routes.find((candidate) => candidate.pattern.test(path));
  const operationMethod = method.toLowerCase() === "head" ? "get" : method.toLowerCase();
  const operation = route && document.paths[route.template][operationMethod];
  const where = `${method} ${path} -> ${answer.status}`;
  let responsePath: string[];
  let response: ResponseObject;
  if (!operation) {
    // Outside the document: only "no such path" and "not with this method" are answers.
    expect([route ? 405 : 404, ...(route && method === "OPTIONS" ? [204] : [])], `${where}: not in the OpenAPI document`).toContain(answer.status);
    if (answer.status === 204) return;
    responsePath = ["components", "schemas", "Error"];
    response = { description: "", content: { "application/json": {} } };
  } else {
    const documented = operation.responses[String(answer.status)];
    expect(documented, `${where}: status not documented in the OpenAPI document`).toBeDefined();
    response = resolved(documented);
    const origin = documented.$ref ? ["components", "responses", documented.$ref.split("/").pop()!] : ["paths", route!.template, operationMethod, "responses", String(answer.status)];
    responsePath = origin;
    for (const [name, header] of Object.entries(response.headers ?? {})) {
      if (resolved(header).required) expect(answer.headers.has(name), `${where}: header ${name} is required`).toBe(true);
    }
  }
  const contentType = answer.headers.get("content-type")?.split(";")[0].trim();
  if (!response.content) {
    expect(answer.text, `${where}: no body is documented`).toBe("");
    return;
  }
  expect(Object.keys(response.content), `${where}: media type not documented`).toContain(contentType);
  if (contentType !== "application/json") return;
  const schemaPath = operation ? pointer(...responsePath, "content", contentType, "schema") : pointer(...responsePath);
  const validate = validatorAt(schemaPath);
  const body: unknown = JSON.parse(answer.text);
  expect(validate(body) ? [] : validate.errors, `${where}: body does not match the OpenAPI schema\n${answer.text.slice(0, 500)}`).toEqual([]);
}

/** A REST call to a test gateway; its answer is checked against the OpenAPI document before the test sees it. */
export async function callRest(
  baseUrl: string,
  method: string,
  url: string,
  init: { token?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<RestAnswer & { body: any }> {
  const response = await fetch(`${baseUrl}${url}`, {
    method,
    headers: { ...(init.token ? { authorization: `Bearer ${init.token}` } : {}), ...init.headers },
    body: init.body,
  });
  const answer = { status: response.status, headers: response.headers, text: await response.text() };
  expectToMatchOpenApi(method, url, answer);
  return { ...answer, body: /json(\s*;|$)/.test(response.headers.get("content-type") ?? "") ? JSON.parse(answer.text) : undefined };
}
