// The exact S3 requests the storage module (src/storage/s3.ts) sends under
// S3_PREFIX, as the recording proxy in front of s3rver sees them: a failed
// multipart upload is aborted with its own key and upload id, and deletes
// (of a file, of earlier attempts, of old files) name exactly the keys meant,
// prefix included, and no others.
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import { createStorage } from "../../src/storage/index.ts";
import { BUCKET, PREFIX, useS3, type SeenRequest } from "../support/s3.ts";

const s3 = useS3();
const storage = () => createStorage(loadConfig({ ...s3.env, LOG_LEVEL: "silent" }), createLogger({ logLevel: "silent" }));
const MIB = 1024 * 1024;

/** A request's method, object key (decoded, without the bucket) and the query parameters named. */
function call(seen: SeenRequest, ...parameters: string[]) {
  const url = new URL(seen.url, "http://s3.test");
  const [, bucket, ...key] = url.pathname.split("/");
  expect(bucket).toBe(BUCKET);
  return {
    method: seen.method,
    key: decodeURIComponent(key.join("/")),
    ...Object.fromEntries(parameters.map((name) => [name, url.searchParams.get(name)])),
  };
}

/** The requests sent while `work` ran. */
async function requestsDuring(work: () => Promise<unknown>): Promise<SeenRequest[]> {
  const first = s3.requests.length;
  await work();
  return s3.requests.slice(first);
}

/** `mebibytes` of CSV-looking bytes, then `failure` (if any) instead of the end. */
function source(mebibytes: number, failure?: Error): Readable {
  return Readable.from((async function* () {
    for (let i = 0; i < mebibytes; i++) yield Buffer.alloc(MIB, `row ${i},text\n`);
    if (failure) throw failure;
  })());
}

const uploadIdsOf = (requests: SeenRequest[]) =>
  [...new Set(requests.map((seen) => new URL(seen.url, "http://s3.test").searchParams.get("uploadId")).filter((id) => id !== null))];

describe("a multipart upload that fails", () => {
  it("when completing it fails: aborted once, with the upload's own key under the prefix and its upload id", async () => {
    const fileName = "prompt_versions-700001-1-0123abcd.csv";
    s3.intercept((seen) => seen.method === "POST" && /[?&]uploadId=/.test(seen.url), 500);
    let failure: unknown;
    const sent = await requestsDuring(() => storage().save(fileName, [source(9)], new AbortController().signal).catch((error) => (failure = error)));
    s3.release();
    expect(failure).toBeInstanceOf(Error);
    const started = sent.filter((seen) => seen.method === "POST" && /[?&]uploads\b/.test(seen.url));
    expect(started.map((seen) => call(seen))).toEqual([{ method: "POST", key: PREFIX + fileName }]);
    const parts = sent.filter((seen) => seen.method === "PUT");
    expect(parts.length).toBeGreaterThanOrEqual(2);
    const [uploadId] = uploadIdsOf(parts);
    expect(uploadIdsOf(sent)).toEqual([uploadId]);
    expect(sent.filter((seen) => seen.method === "DELETE").map((seen) => call(seen, "uploadId")))
      .toEqual([{ method: "DELETE", key: PREFIX + fileName, uploadId }]);
    expect(await s3.keys()).not.toContain(PREFIX + fileName);
  }, 60_000);

  it("when its source fails after a part went up: aborted once, with its own key and upload id", async () => {
    const fileName = "judge_scores-700002-3-0123abcd.csv";
    let failure: unknown;
    const sent = await requestsDuring(() =>
      storage().save(fileName, [source(17, new Error("the query failed"))], new AbortController().signal).catch((error) => (failure = error)));
    expect((failure as Error).message).toBe("the query failed");
    const [uploadId, ...others] = uploadIdsOf(sent.filter((seen) => seen.method === "PUT"));
    expect(uploadId).toEqual(expect.any(String));
    expect(others).toEqual([]);
    expect(sent.filter((seen) => seen.method === "DELETE").map((seen) => call(seen, "uploadId")))
      .toEqual([{ method: "DELETE", key: PREFIX + fileName, uploadId }]);
    expect(sent.some((seen) => seen.method === "POST" && /[?&]uploadId=/.test(seen.url))).toBe(false);
  }, 60_000);
});

describe("deletes", () => {
  it("remove deletes exactly the export's object key, prefix included", async () => {
    const key = `${PREFIX}multi_agent_log-700003-1-0123abcd.csv`;
    const neighbours = [`${PREFIX}multi_agent_log-700003-2-0123abcd.csv`, `multi_agent_log-700003-1-0123abcd.csv`];
    for (const object of [key, ...neighbours]) await s3.put(object, "x");
    const sent = await requestsDuring(() => storage().remove({ fileName: "multi_agent_log-700003-1-0123abcd.csv", objectKey: key }));
    expect(sent.filter((seen) => seen.method === "DELETE").map((seen) => call(seen))).toEqual([{ method: "DELETE", key }]);
    expect(await s3.keys("")).toEqual(expect.arrayContaining(neighbours));
    expect(await s3.keys("")).not.toContain(key);
    for (const object of neighbours) await s3.remove(object);
  });

  it("remove deletes the key the export recorded, not one under today's S3_PREFIX", async () => {
    // Written before S3_PREFIX changed: the export row keeps the key it was stored under.
    const fileName = "multi_agent_log-700010-1-0123abcd.csv";
    const recorded = `earlier-prefix/${fileName}`;
    const underTodaysPrefix = `${PREFIX}${fileName}`;
    for (const object of [recorded, underTodaysPrefix]) await s3.put(object, "x");
    const sent = await requestsDuring(() => storage().remove({ fileName, objectKey: recorded }));
    expect(sent.filter((seen) => seen.method === "DELETE").map((seen) => call(seen))).toEqual([{ method: "DELETE", key: recorded }]);
    expect(await s3.keys("")).toContain(underTodaysPrefix);
    await s3.remove(underTodaysPrefix);
  });

  it("removeEarlierAttempts deletes exactly the earlier attempts' keys under the prefix", async () => {
    const name = (rest: string) => `judge_scores-${rest}-0123abcd.csv`;
    const earlier = [PREFIX + name("700004-1"), PREFIX + name("700004"), `${PREFIX}${name("700004-2")}.partial`];
    const kept = [PREFIX + name("700004-3"), PREFIX + name("7000040-1"), name("700004-1"), `other/${name("700004-1")}`];
    for (const key of [...earlier, ...kept]) await s3.put(key, "x");
    const sent = await requestsDuring(() => storage().removeEarlierAttempts("judge_scores", "700004", 3));
    const deleted = sent.filter((seen) => seen.method === "DELETE").map((seen) => call(seen).key);
    expect(deleted.sort()).toEqual([...earlier].sort());
    const lists = sent.filter((seen) => seen.method === "GET" && /[?&]list-type=2/.test(seen.url));
    expect(lists.map((seen) => new URL(seen.url, "http://s3.test").searchParams.get("prefix"))).toEqual([`${PREFIX}judge_scores-700004-`]);
    for (const key of kept) await s3.remove(key);
  });

  it("removeWrittenBefore deletes exactly the old export objects under the prefix", async () => {
    const old = [`${PREFIX}agent_effectiveness-700005-1-0123abcd.csv`, `${PREFIX}all-700006-0123abcd.zip`];
    const kept = [`${PREFIX}agent_effectiveness-700007-1-0123abcd.csv`, `${PREFIX}notes.txt`, `${PREFIX}nested/all-700008-0123abcd.zip`, `all-700009-0123abcd.zip`];
    for (const key of [...old, ...kept]) await s3.put(key, "x");
    const longAgo = new Date(Date.now() - 30 * 86400 * 1000);
    for (const key of [...old, ...kept.slice(1)]) await s3.age(key, longAgo);
    const removed = { count: 0 };
    const sent = await requestsDuring(async () => (removed.count = await storage().removeWrittenBefore(new Date(Date.now() - 86400 * 1000))));
    expect(removed.count).toBe(old.length);
    expect(sent.filter((seen) => seen.method === "DELETE").map((seen) => call(seen).key).sort()).toEqual([...old].sort());
    for (const key of kept) await s3.remove(key);
  });
});
