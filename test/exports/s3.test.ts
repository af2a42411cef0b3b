// EXPORT_STORAGE=s3 against s3rver (test/support/s3.ts): exports stream into
// multipart uploads that appear only when complete, downloads redirect to
// presigned URLs after the same RLS check, and retention deletes objects.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import { createStorage } from "../../src/storage/index.ts";
import { createUser, useTestDatabase } from "../support/db.ts";
import { expectToMatchOpenApi } from "../support/openapi.ts";
import { PREFIX, sha256, useS3 } from "../support/s3.ts";
import { signTestToken, startServer, type RunningServer } from "../support/server.ts";
import {
  contentsOf,
  readExport,
  requestExport,
  type ExportRow,
  type SignedIn,
  spawnWorker,
  startTestWorker,
  waitForExport,
  waitUntil,
} from "./support.ts";
import { expectedExport } from "./oracle.ts";

const db = useTestDatabase();
const s3 = useS3();
let localDir: string;
let alice: SignedIn;
let bob: SignedIn;
let carol: SignedIn;
let dave: SignedIn;
let adminId: string;

/** Enough of alice's prompts that prompt_versions (about 480 bytes a prompt) needs a multipart upload of 8 MiB parts. */
const LARGE = 20_000;

beforeAll(async () => {
  localDir = await mkdtemp(path.join(tmpdir(), "prompter-exports-"));
  alice = { role: "app_user", userId: await createUser(db.pool) };
  adminId = await createUser(db.pool, { admin: true });
  await db.pool.query("select app_private.generate_demo($1, $2)", [alice.userId, LARGE]);
  // Users may request 10 exports a minute: the tests below export as different users.
  const smallUser = async (): Promise<SignedIn> => {
    const user: SignedIn = { role: "app_user", userId: await createUser(db.pool) };
    await db.pool.query("select app_private.generate_demo($1, 30)", [user.userId]);
    return user;
  };
  [bob, carol, dave] = [await smallUser(), await smallUser(), await smallUser()];
});
afterAll(() => rm(localDir, { recursive: true, force: true }));

/** Runs exports with a worker in this process that has `env`, one at a time; stops the worker. */
async function exportWith(env: Record<string, string>, requests: [SignedIn, string, object?][]): Promise<ExportRow[]> {
  const worker = await startTestWorker(db.url, localDir, env);
  try {
    const rows = [];
    for (const [user, kind, options] of requests) rows.push(await waitForExport(db.pool, await requestExport(db.pool, user, kind, options)));
    return rows;
  } finally {
    await worker.stop();
  }
}

const keysOf = async (id: string) => (await s3.keys()).filter((key) => key.includes(`-${id}-`));

describe("exports to S3", () => {
  it("every kind goes to S3 and back with the bytes and sha256 the same export gives in EXPORT_DIR", async () => {
    const requests: [SignedIn, string, object?][] = [
      [alice, "prompt_versions"],
      [bob, "multi_agent_log", { gzip: true }],
      [bob, "judge_scores"],
      [bob, "agent_effectiveness"],
      [bob, "all"],
      [bob, "multi_agent_log", { excel: true }],
    ];
    const inS3 = await exportWith(s3.env, requests);
    const objects = [];
    for (const [i, row] of inS3.entries()) {
      expect(row).toMatchObject({ status: "succeeded", object_key: PREFIX + row.file_name });
      const data = await s3.read(row.object_key!);
      expect(data.length).toBe(Number(row.bytes));
      expect(sha256(data)).toBe(row.sha256);
      const [user, , options] = requests[i];
      // Excel's variant (a BOM, neutralised formulas) is compared with the same export in EXPORT_DIR below.
      if (options && "excel" in options) expect(data.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
      else expect(contentsOf(row, data)).toEqual(await expectedExport(db.pool, user, row.kind));
      objects.push(data);
    }
    expect(await s3.keys()).toEqual(inS3.map((row) => row.object_key).sort());
    // The large export went up in parts (at least two), and only its completion made it visible.
    const large = inS3[0].object_key!;
    const parts = s3.requests.filter((seen) => seen.method === "PUT" && seen.url.includes(large.split("/").pop()!) && /[?&]partNumber=/.test(seen.url));
    expect(parts.length).toBeGreaterThanOrEqual(2);
    expect(parts.every((part) => part.status === 200)).toBe(true);

    const local = await exportWith({}, requests);
    for (const [i, row] of local.entries()) {
      expect(row).toMatchObject({ status: "succeeded", object_key: null, sha256: inS3[i].sha256 });
      expect((await readFile(path.join(localDir, row.file_name!))).equals(objects[i])).toBe(true);
    }
  }, 300_000);

  it("a worker killed mid-upload leaves no object, and the retry succeeds", async () => {
    // Held back: the request that would complete the upload, so the kill lands after its parts went up.
    const completing = s3.intercept((seen) => seen.method === "POST" && /[?&]uploadId=/.test(seen.url), "hold");
    const child = await spawnWorker(db.url, localDir, s3.env);
    let id: string;
    try {
      id = await requestExport(db.pool, alice, "prompt_versions");
      await completing;
      child.child.kill("SIGKILL");
      await child.exited;
    } finally {
      s3.release();
      await child.stop();
    }
    expect(await readExport(db.pool, id)).toMatchObject({ status: "running", attempts: 1, object_key: null });
    expect(await keysOf(id)).toEqual([]);

    // The next worker finds the dead one's heartbeat silent and runs the job again.
    const worker = await startTestWorker(db.url, localDir, { ...s3.env, WORKER_HEARTBEAT_INTERVAL: "1", WORKER_DEAD_AFTER: "2" });
    try {
      const retried = await waitForExport(db.pool, id);
      expect(retried).toMatchObject({ status: "succeeded", attempts: 2, error_message: null });
      expect(await keysOf(id)).toEqual([retried.object_key]);
      const data = await s3.read(retried.object_key!);
      expect(sha256(data)).toBe(retried.sha256);
      expect(contentsOf(retried, data)).toEqual(await expectedExport(db.pool, alice, "prompt_versions"));
    } finally {
      await worker.stop();
    }
  }, 120_000);

  it("an upload that fails is aborted, shows nothing, and the export succeeds on its next attempt", async () => {
    const failing = s3.intercept((seen) => seen.method === "POST" && /[?&]uploadId=/.test(seen.url), 500);
    const worker = await startTestWorker(db.url, localDir, s3.env);
    try {
      const id = await requestExport(db.pool, alice, "prompt_versions");
      await failing;
      const failed = await waitUntil(() => readExport(db.pool, id), (row) => row.error_message !== null, "the attempt has failed");
      s3.release();
      expect(failed).toMatchObject({ status: "queued", attempts: 1, object_key: null });
      expect(await keysOf(id)).toEqual([]);
      // The task aborted its own upload (s3rver cannot abort one and answers 405; the task logs that and carries on).
      const uploadId = /[?&]uploadId=([^&]+)/.exec(s3.requests.findLast((seen) => seen.method === "POST" && seen.url.includes(`-${id}-`) && seen.url.includes("uploadId="))!.url)![1];
      expect(s3.requests.some((seen) => seen.method === "DELETE" && seen.url.includes(`uploadId=${uploadId}`))).toBe(true);
      expect(worker.lines.some((line) => line.level === "warn" && line.message.startsWith("could not abort the export's multipart upload"))).toBe(true);

      const retried = await waitForExport(db.pool, id);
      expect(retried).toMatchObject({ status: "succeeded", attempts: 2 });
      expect(await keysOf(id)).toEqual([retried.object_key]);
      expect(sha256(await s3.read(retried.object_key!))).toBe(retried.sha256);
    } finally {
      s3.release();
      await worker.stop();
    }
  }, 120_000);

  it("retention deletes expired exports' objects and old objects no export refers to, under S3_PREFIX only", async () => {
    const DAYS = 7;
    const daysAgo = (days: number) => new Date(Date.now() - days * 24 * 3600 * 1000);
    const [expired, recent] = await exportWith(s3.env, [[carol, "agent_effectiveness"], [carol, "agent_effectiveness"]]);
    await db.pool.query("update app_public.exports set requested_at = $2 where id = $1", [expired.id, daysAgo(DAYS + 1)]);
    const orphans = { old: `${PREFIX}judge_scores-999999-1-0123abcd.csv`, recent: `${PREFIX}judge_scores-999998-1-0123abcd.csv` };
    const notOurs = [`${PREFIX}notes.txt`, `elsewhere/judge_scores-999997-0123abcd.csv`];
    for (const key of [...Object.values(orphans), ...notOurs]) await s3.put(key, "x");
    for (const key of [orphans.old, ...notOurs]) await s3.age(key, daysAgo(DAYS + 1));
    const before = await s3.keys("");

    const worker = await startTestWorker(db.url, localDir, { ...s3.env, EXPORT_RETENTION_DAYS: String(DAYS) });
    try {
      await db.pool.query("select graphile_worker.add_job('export_retention', '{}')");
      const done = await waitUntil(
        async () => worker.lines.find((line) => line.message === "export retention"),
        (line) => line !== undefined,
        "the retention job has run",
      );
      expect(done!.fields).toMatchObject({ deletedExports: 1, deletedFiles: 2 });
    } finally {
      await worker.stop();
    }
    expect(await readExport(db.pool, expired.id)).toBeUndefined();
    expect(await s3.keys("")).toEqual(before.filter((key) => key !== expired.object_key && key !== orphans.old));
    expect(before).toContain(recent.object_key);
  });

  it("a retry deletes only earlier attempts' objects of its export, not a newer attempt's nor other exports'", async () => {
    const storage = createStorage(loadConfig({ ...s3.env, LOG_LEVEL: "silent" }), createLogger({ logLevel: "silent" }));
    const name = (rest: string) => `${PREFIX}judge_scores-${rest}-0123abcd.csv`;
    const earlier = [name("424242-1"), name("424242"), `${name("424242-1")}.partial`];
    const kept = [name("424242-2"), name("424242-3"), name("4242420-1"), `${PREFIX}multi_agent_log-424242-1-0123abcd.csv`];
    for (const key of [...earlier, ...kept]) await s3.put(key, "x");
    await storage.removeEarlierAttempts("judge_scores", "424242", 2);
    expect((await s3.keys()).filter((key) => key.includes("424242"))).toEqual([...kept].sort());
    for (const key of kept) await s3.remove(key);
  });
});

describe("downloads from S3", () => {
  let gateway: RunningServer;
  let quick: RunningServer;
  let mine: ExportRow;
  let other: ExportRow;
  const token = (userId: string, options: { admin?: boolean } = {}) => signTestToken(userId, options);
  const download = (server: RunningServer, row: ExportRow, headers: Record<string, string> = {}, query = "") =>
    fetch(`${server.baseUrl}/api/exports/${row.id}/download${query}`, { headers, redirect: "manual" });

  beforeAll(async () => {
    [mine, other] = await exportWith(s3.env, [[dave, "multi_agent_log", { gzip: true }], [alice, "agent_effectiveness"]]);
    // Neither gateway shares the worker's EXPORT_DIR: one has another, the other none at all.
    [gateway, quick] = await Promise.all([
      startServer({ databaseUrl: db.url, env: { ...s3.env, EXPORT_DIR: path.join(localDir, "elsewhere") } }),
      startServer({ databaseUrl: db.url, env: { ...s3.env, EXPORT_DIR: undefined, S3_PRESIGNED_URL_SECONDS: "1" } }),
    ]);
  });
  afterAll(() => Promise.all([gateway?.stop(), quick?.stop()]));

  it("redirects the owner to a presigned URL that expires within a minute and downloads the object as a file", async () => {
    const response = await download(gateway, mine, { authorization: `Bearer ${token(dave.userId)}` });
    expect(response.status).toBe(302);
    expect(response.headers.get("etag")).toBe(`"${mine.sha256}"`);
    const url = new URL(response.headers.get("location")!);
    expect(url.origin).toBe(s3.env.S3_ENDPOINT);
    expect(Number(url.searchParams.get("X-Amz-Expires"))).toBeLessThanOrEqual(60);
    const file = await fetch(url);
    expect(file.status).toBe(200);
    expect(file.headers.get("content-disposition")).toBe(`attachment; filename="${mine.file_name}"`);
    expect(file.headers.get("content-type")).toBe("application/gzip");
    const data = Buffer.from(await file.arrayBuffer());
    expect(sha256(data)).toBe(mine.sha256);
    expect(data.equals(await s3.read(mine.object_key!))).toBe(true);
    // A client that already has it gets 304, no redirect.
    const unchanged = await download(gateway, mine, { authorization: `Bearer ${token(dave.userId)}`, "if-none-match": `"${mine.sha256}"` });
    expect(unchanged.status).toBe(304);
    expect(unchanged.headers.get("location")).toBeNull();
  });

  it("the UI's signed link redirects to a presigned URL as well, and streams with ?proxy=true", async () => {
    const created = await fetch(`${gateway.baseUrl}/api/exports/${mine.id}/download-link`, {
      method: "POST",
      headers: { authorization: `Bearer ${token(dave.userId)}` },
    });
    expect(created.status).toBe(200);
    const { url } = (await created.json()) as { url: string };
    const redirected = await fetch(`${gateway.baseUrl}${url}`, { redirect: "manual" });
    expect(redirected.status).toBe(302);
    expectToMatchOpenApi("GET", url, { status: redirected.status, headers: redirected.headers, text: await redirected.text() });
    const location = new URL(redirected.headers.get("location")!);
    expect(location.origin).toBe(s3.env.S3_ENDPOINT);
    expect(sha256(Buffer.from(await (await fetch(location)).arrayBuffer()))).toBe(mine.sha256);

    const proxied = await fetch(`${gateway.baseUrl}${url}&proxy=true`, { redirect: "manual" });
    expect(proxied.status).toBe(200);
    const data = Buffer.from(await proxied.arrayBuffer());
    expectToMatchOpenApi("GET", url, { status: proxied.status, headers: proxied.headers, text: "" });
    expect(sha256(data)).toBe(mine.sha256);
    // The link names its export: another export's download with it is refused.
    const reused = await fetch(`${gateway.baseUrl}${url.replace(`/exports/${mine.id}/`, `/exports/${other.id}/`)}`, { redirect: "manual" });
    expect(reused.status).toBe(403);
  });

  it("streams through the gateway with ?proxy=true", async () => {
    const response = await download(quick, mine, { authorization: `Bearer ${token(dave.userId)}` }, "?proxy=true");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-disposition")?.replaceAll('"', "")).toBe(`attachment; filename=${mine.file_name}`);
    expect(response.headers.get("content-length")).toBe(mine.bytes);
    const data = Buffer.from(await response.arrayBuffer());
    expect(sha256(data)).toBe(mine.sha256);
  });

  it("lets RLS decide who may download: another user, anonymous and a forged token get no URL; an admin does", async () => {
    const answers = {
      stranger: await download(gateway, mine, { authorization: `Bearer ${token(alice.userId)}` }),
      anonymous: await download(gateway, mine),
      forged: await download(gateway, mine, { authorization: `Bearer ${signTestToken(dave.userId, { secret: "not-the-servers-secret-0123456789abcdef" })}` }),
      proxiedStranger: await download(gateway, mine, { authorization: `Bearer ${token(alice.userId)}` }, "?proxy=true"),
      admin: await download(gateway, mine, { authorization: `Bearer ${token(adminId, { admin: true })}` }),
    };
    expect(Object.fromEntries(Object.entries(answers).map(([who, response]) => [who, response.status]))).toEqual({
      stranger: 404, anonymous: 401, forged: 401, proxiedStranger: 404, admin: 302,
    });
    for (const who of ["stranger", "anonymous", "forged", "proxiedStranger"] as const) {
      expect(answers[who].headers.get("location")).toBeNull();
      expect(await answers[who].text()).not.toContain(mine.object_key);
    }
  });

  it("a presigned URL works for its own object only, and not once it has expired", async () => {
    const response = await download(quick, mine, { authorization: `Bearer ${token(dave.userId)}` });
    const url = new URL(response.headers.get("location")!);
    const otherUrl = new URL(url);
    otherUrl.pathname = url.pathname.replace(mine.object_key!, other.object_key!);
    expect(otherUrl.pathname).not.toBe(url.pathname);
    expect((await fetch(otherUrl)).status).toBe(403);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const expired = await fetch(url);
    expect(expired.status).toBe(403);
    expect(await expired.text()).toContain("Request has expired");
  });

  it("answers 410 once the object is gone, redirecting or not, and for a file on a worker's disk", async () => {
    const [gone] = await exportWith(s3.env, [[dave, "agent_effectiveness"]]);
    await s3.remove(gone.object_key!);
    for (const query of ["", "?proxy=true"]) {
      const response = await download(gateway, gone, { authorization: `Bearer ${token(dave.userId)}` }, query);
      expect(response.status).toBe(410);
      expect(await response.json()).toMatchObject({ success: false, error: { code: "EXPORT_FILE_GONE" } });
    }
    // An export written to a worker's EXPORT_DIR before the switch to S3 is not in the bucket either.
    const [onDisk] = await exportWith({}, [[dave, "agent_effectiveness"]]);
    const response = await download(gateway, onDisk, { authorization: `Bearer ${token(dave.userId)}` });
    expect(response.status).toBe(410);
    expect(await response.json()).toMatchObject({ error: { code: "EXPORT_FILE_GONE", message: expect.stringContaining("EXPORT_STORAGE=s3") } });
  });
});
