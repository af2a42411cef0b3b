// Values a client chooses are keys within its user only: two users sending the
// same recordRun idempotency key each get their own run, first time and on
// every retry, in SQL and through REST and GraphQL; two users sending the same
// X-Request-Id each get their own export, stamped with it; a download link
// stands for the one user and the one export it was issued for.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { downloadLink, linkedCaller } from "../../src/server/download-links.ts";
import { commitAs } from "../support/committed.ts";
import { createUser, useTestDatabase } from "../support/db.ts";
import { graphql, signTestToken, startServer, type RunningServer } from "../support/server.ts";
import { callRest } from "../support/openapi.ts";

const db = useTestDatabase();

function aRun(idempotencyKey: string, prompt = "Plan a product launch") {
  const scores = (x: number) => ({ clarity: x, specificity: x, actionability: x, structure: x, context_use: x });
  return {
    idempotency_key: idempotencyKey,
    prompt,
    versions: [
      { agent: "syntax", text: "Plan the launch.", scores: scores(4) },
      { agent: "structure", text: "Plan: goals, channels, dates.", scores: scores(9) },
    ],
    best_version: 1,
  };
}

interface RunResult {
  prompt_id: number;
  version_ids: number[];
  best_version_id: number;
  replayed: boolean;
}

/** record_run as the user, committed, as the gateway runs it. */
const recordRunAs = (userId: string, run: object) => commitAs(db.pool, { role: "app_user", userId }, async (client) =>
  (await client.query<{ result: RunResult }>("select app_public.record_run($1) as result", [JSON.stringify(run)])).rows[0].result);

/** Who owns the run's rows, counted independently of what record_run answered. */
async function ownersOf(result: RunResult) {
  const { rows } = await db.pool.query<{ prompt_owner: string; version_owners: string[]; best_owner: string }>(
    `select (select user_id::text from app_public.prompts where id = $1) as prompt_owner,
            (select array_agg(distinct user_id::text) from app_public.prompt_versions where id = any($2)) as version_owners,
            (select user_id::text from app_public.best_heads where prompt_id = $1) as best_owner`,
    [result.prompt_id, result.version_ids]);
  return rows[0];
}

const promptsOf = async (userId: string) =>
  Number((await db.pool.query("select count(*) from app_public.prompts where user_id = $1", [userId])).rows[0].count);

describe("recordRun idempotency keys (SQL)", () => {
  it("two users, one key, one identical run: each gets their own run, and each retry replays the retrier's own", async () => {
    const [ann, ben] = [await createUser(db.pool), await createUser(db.pool)];
    const run = aRun("shared-key-1");
    const annFirst = await recordRunAs(ann, run);
    const benFirst = await recordRunAs(ben, run);
    expect(benFirst.replayed).toBe(false);
    expect(benFirst.prompt_id).not.toBe(annFirst.prompt_id);
    expect(await ownersOf(annFirst)).toEqual({ prompt_owner: ann, version_owners: [ann], best_owner: ann });
    expect(await ownersOf(benFirst)).toEqual({ prompt_owner: ben, version_owners: [ben], best_owner: ben });

    for (let retry = 0; retry < 2; retry++) {
      expect(await recordRunAs(ben, run)).toEqual({ ...benFirst, replayed: true });
      expect(await recordRunAs(ann, run)).toEqual({ ...annFirst, replayed: true });
    }
    expect([await promptsOf(ann), await promptsOf(ben)]).toEqual([1, 1]);
  });

  it("one user's key does not make another user's different run a reuse (PRIDM is per user)", async () => {
    const [cal, dee] = [await createUser(db.pool), await createUser(db.pool)];
    const calFirst = await recordRunAs(cal, aRun("shared-key-2", "Cal's prompt"));
    const deeFirst = await recordRunAs(dee, aRun("shared-key-2", "Dee's prompt"));
    expect(deeFirst.replayed).toBe(false);
    expect(await ownersOf(deeFirst)).toMatchObject({ prompt_owner: dee });
    const { rows } = await db.pool.query("select user_id::text, text from app_public.prompts where id = any($1) order by user_id",
      [[calFirst.prompt_id, deeFirst.prompt_id]]);
    expect(rows).toEqual([{ user_id: cal, text: "Cal's prompt" }, { user_id: dee, text: "Dee's prompt" }].sort((a, b) => Number(a.user_id) - Number(b.user_id)));
    expect(await recordRunAs(dee, aRun("shared-key-2", "Dee's prompt"))).toEqual({ ...deeFirst, replayed: true });
    expect(await recordRunAs(cal, aRun("shared-key-2", "Cal's prompt"))).toEqual({ ...calFirst, replayed: true });
  });
});

describe("through the gateway", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ databaseUrl: db.url });
  });
  afterAll(() => server?.stop());

  it("one key from two users over REST and GraphQL, retried by each: each gets their own run", async () => {
    const [eve, fay] = [await createUser(db.pool), await createUser(db.pool)];
    const body = JSON.stringify(aRun("shared-key-http"));
    const viaRest = async (userId: string) => {
      const answer = await callRest(server.baseUrl, "POST", "/api/runs", { token: signTestToken(userId), body, headers: { "content-type": "application/json" } });
      return { status: answer.status, run: answer.body.run as RunResult };
    };
    const viaGraphql = async (userId: string) =>
      (await graphql(server, "mutation ($run: JSON!) { recordRun(input: { run: $run }) { result } }", { run: JSON.parse(body) }, signTestToken(userId)))
        .data!.recordRun.result as RunResult;

    const eveFirst = await viaRest(eve);
    const fayFirst = await viaGraphql(fay);
    expect(eveFirst.status).toBe(201);
    expect(fayFirst.replayed).toBe(false);
    expect(await ownersOf(fayFirst)).toEqual({ prompt_owner: fay, version_owners: [fay], best_owner: fay });
    expect(await viaGraphql(eve)).toEqual({ ...eveFirst.run, replayed: true });
    expect(await viaRest(fay)).toEqual({ status: 200, run: { ...fayFirst, replayed: true } });
    expect(await viaRest(eve)).toEqual({ status: 200, run: { ...eveFirst.run, replayed: true } });
    expect([await promptsOf(eve), await promptsOf(fay)]).toEqual([1, 1]);
  });

  it("one X-Request-Id from two users: two exports, each its requester's, each stamped with the id", async () => {
    const [gus, hal] = [await createUser(db.pool), await createUser(db.pool)];
    const requestExport = async (userId: string) => {
      const answer = await callRest(server.baseUrl, "POST", "/api/storage/export-all", {
        token: signTestToken(userId), headers: { "x-request-id": "client-chosen-id-1" } });
      expect(answer.headers.get("x-request-id")).toBe("client-chosen-id-1");
      return answer.body.export_id as number;
    };
    const gusExport = await requestExport(gus);
    const halExport = await requestExport(hal);
    expect(halExport).not.toBe(gusExport);
    const { rows } = await db.pool.query("select id::int, user_id::text, request_id from app_public.exports where request_id = 'client-chosen-id-1' order by id");
    expect(rows).toEqual([
      { id: gusExport, user_id: gus, request_id: "client-chosen-id-1" },
      { id: halExport, user_id: hal, request_id: "client-chosen-id-1" },
    ]);
    for (const [userId, own, other] of [[gus, gusExport, halExport], [hal, halExport, gusExport]] as const) {
      const listed = await callRest(server.baseUrl, "GET", "/api/exports", { token: signTestToken(userId) });
      expect(listed.body.exports.map((e: { id: number }) => e.id)).toEqual([own]);
      expect((await callRest(server.baseUrl, "GET", `/api/exports/${other}`, { token: signTestToken(userId) })).status).toBe(404);
    }
  });
});

describe("download links", () => {
  const SECRET = "download-link-test-secret-0123456789";
  const parametersOf = (url: string) => Object.fromEntries(new URL(url, "http://gateway.test").searchParams);

  it("a link is for its user and its export only: another user's id or another export's path is refused", () => {
    const now = Date.now();
    const link = downloadLink(SECRET, "41", { role: "app_user", userId: "7" }, now).url;
    const parameters = parametersOf(link);
    expect(linkedCaller(SECRET, "41", parameters, now).userId).toBe("7");
    const refusal = (exportId: string, changed: Record<string, string>) => {
      try {
        linkedCaller(SECRET, exportId, { ...parameters, ...changed }, now);
        return "accepted";
      } catch (error) {
        return (error as { code: string }).code;
      }
    };
    expect(refusal("41", { user: "8" })).toBe("DOWNLOAD_LINK_INVALID");
    expect(refusal("42", {})).toBe("DOWNLOAD_LINK_INVALID");
    expect(refusal("41", { as: "admin" })).toBe("DOWNLOAD_LINK_INVALID");
    // Two users' links for the same export differ, and neither stands for the other.
    const other = parametersOf(downloadLink(SECRET, "41", { role: "app_user", userId: "8" }, now).url);
    expect(other.signature).not.toBe(parameters.signature);
    expect(refusal("41", { signature: other.signature })).toBe("DOWNLOAD_LINK_INVALID");
  });
});
