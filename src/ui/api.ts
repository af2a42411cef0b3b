// Every call to the gateway goes through here: it adds the tab's token, turns
// error bodies into ApiError, and ends the session on any 401.
import { currentSession } from "./session.ts";

/** A failure the gateway explained: a stable code (the REST error code, or the SQLSTATE) and a message. */
export class ApiError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** The token was refused: the page has already gone back to sign-in and says why. */
export class SessionEnded extends ApiError {}

let onSessionEnded: (message: string) => void = () => {};

export function whenSessionEnds(handler: (message: string) => void): void {
  onSessionEnded = handler;
}

/** REST's error body, or GraphQL's (a 401, or an operation refused as a whole: 429, 503). */
interface ErrorBody {
  error?: { code?: unknown; message?: unknown };
  errors?: { message?: unknown; extensions?: { code?: unknown } }[];
}

async function errorFrom(response: Response): Promise<ApiError> {
  const body = (await response.json().catch(() => ({}))) as ErrorBody;
  const error = body.error ?? { code: body.errors?.[0]?.extensions?.code, message: body.errors?.[0]?.message };
  const code = typeof error.code === "string" ? error.code : `HTTP_${response.status}`;
  const message = typeof error.message === "string" ? error.message : `The server answered ${response.status} ${response.statusText}.`;
  return new ApiError(code, message);
}

async function send(path: string, init: RequestInit = {}): Promise<Response> {
  const session = currentSession();
  const headers = new Headers(init.headers);
  if (!headers.has("Accept")) headers.set("Accept", "application/json");
  if (session) headers.set("Authorization", `Bearer ${session.token}`);
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers, cache: "no-store" });
  } catch {
    throw new ApiError("NETWORK", "The server cannot be reached. Check the connection and try again.");
  }
  if (response.ok) return response;
  const error = await errorFrom(response);
  if (response.status === 401 && session) {
    onSessionEnded(error.message);
    throw new SessionEnded(error.code, error.message);
  }
  throw error;
}

export async function getJson<T>(path: string): Promise<T> {
  return (await send(path)).json() as Promise<T>;
}

export async function postJson<T>(path: string, body: unknown): Promise<T> {
  const response = await send(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return response.json() as Promise<T>;
}

/** A DELETE, whose answer (204) has no body. */
export async function deleteResource(path: string): Promise<void> {
  await send(path, { method: "DELETE" });
}

interface GraphqlResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: unknown } }[];
}

/** GraphQL answers errors with 200 and `errors`; the first one becomes an ApiError with its SQLSTATE as code. */
export async function graphql<T>(query: string, variables: Record<string, unknown>): Promise<T> {
  const result = await postJson<GraphqlResponse<T>>("/graphql", { query, variables });
  const [first] = result.errors ?? [];
  if (first) {
    const code = typeof first.extensions?.code === "string" ? first.extensions.code : "GRAPHQL";
    throw new ApiError(code, first.message);
  }
  if (!result.data) throw new ApiError("GRAPHQL", "The server sent no data.");
  return result.data;
}

/**
 * Asks the gateway for a short-lived signed link and lets the browser fetch it:
 * the file streams to disk however large it is (no blob in the page's memory),
 * and the bearer token never appears in a URL, where logs and history keep it.
 */
export async function download(linkPath: string): Promise<void> {
  const { url } = await postJson<{ url: string }>(linkPath, {});
  const link = document.createElement("a");
  link.href = url;
  link.download = ""; // named by the answer's Content-Disposition
  document.body.append(link);
  link.click();
  link.remove();
}

/**
 * Runs what a button asks for with the button disabled, and `explain`s a
 * failure; one that ended the session is not explained here, as the page
 * has already gone back to sign-in and said why.
 */
export async function whileBusy(button: HTMLButtonElement, work: () => Promise<void>, explain: (failure: Error) => void): Promise<void> {
  button.disabled = true;
  try {
    await work();
  } catch (failure) {
    if (!(failure instanceof SessionEnded)) explain(failure as Error);
  } finally {
    button.disabled = false;
  }
}
