// An S3 server for the tests: s3rver (S3's HTTP protocol in Node, objects in a
// temporary directory) on a loopback port, behind a small proxy that records
// every request and can hold back the ones a test names, to stop a worker at
// an exact step of an upload. Processes reach it with `env`; the test reads
// the bucket with its own SDK client, independently of the code under test.
//
// s3rver checks a presigned URL's expiry but not its SigV4 signature, so the
// proxy checks the signature of presigned requests as S3 does (recomputed here
// from the AWS specification, not with the SDK that signed it).
import { createHash, createHmac } from "node:crypto";
import { mkdtemp, rm, utimes } from "node:fs/promises";
import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import S3rver from "s3rver";
import { afterAll, beforeAll } from "vitest";

export const BUCKET = "prompter-test-exports";
export const PREFIX = "team-a/exports/";
// s3rver's only account.
const CREDENTIALS = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" };

/** A request the proxy has seen: method, path with query, and the status it was answered with (once answered). */
export interface SeenRequest {
  method: string;
  url: string;
  status?: number;
}

type Rule = { matches: (seen: SeenRequest) => boolean; answer: "hold" | number; arrived: () => void };

export function useS3() {
  const context = {
    /** The settings that make prompter use this server. */
    env: {} as Record<string, string>,
    client: undefined as unknown as S3Client,
    requests: [] as SeenRequest[],
    /**
     * From now on, requests that `matches` accepts are held unanswered (until
     * the connection closes) or answered with an error status; resolves when the first arrives.
     */
    intercept(matches: (seen: SeenRequest) => boolean, answer: "hold" | number): Promise<void> {
      return new Promise((arrived) => rules.push({ matches, answer, arrived }));
    },
    /** Forward every request again. */
    release() {
      rules.length = 0;
      for (const response of held.splice(0)) response.destroy();
    },
    /** The keys in the bucket under `prefix`, sorted. */
    async keys(prefix = PREFIX): Promise<string[]> {
      const page = await context.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
      return (page.Contents ?? []).map((object) => object.Key!).sort();
    },
    async read(key: string): Promise<Buffer> {
      const object = await context.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      return Buffer.from(await object.Body!.transformToByteArray());
    },
    async put(key: string, body: string) {
      await context.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
    },
    async remove(key: string) {
      await context.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
    },
    /** Backdates an object: s3rver reports its file's mtime as LastModified. */
    async age(key: string, when: Date) {
      const parts = key.split("/");
      const name = `${parts.pop()}._S3rver_object`;
      await utimes(path.join(directory, BUCKET, ...parts, name), when, when);
    },
  };
  const rules: Rule[] = [];
  const held: ServerResponse[] = [];
  let directory: string;
  let s3rver: S3rver;
  let proxy: ReturnType<typeof createServer>;

  beforeAll(async () => {
    directory = await mkdtemp(path.join(tmpdir(), "prompter-s3-"));
    s3rver = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory, configureBuckets: [{ name: BUCKET }] });
    const upstream = await s3rver.run();
    proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
      const seen: SeenRequest = { method: req.method!, url: req.url! };
      context.requests.push(seen);
      if (!presignedSignatureMatches(req)) {
        seen.status = 403;
        res.writeHead(403, { "content-type": "application/xml" });
        return void res.end("<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message></Error>");
      }
      const rule = rules.find((candidate) => candidate.matches(seen));
      if (rule) {
        rule.arrived();
        req.resume();
        if (rule.answer === "hold") return void held.push(res);
        seen.status = rule.answer;
        res.writeHead(rule.answer, { "content-type": "application/xml" });
        return void res.end("<Error><Code>InternalError</Code><Message>failing on purpose</Message></Error>");
      }
      // Headers unchanged (Host included): signatures cover them.
      const forwarded = request(
        { host: "127.0.0.1", port: upstream.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          seen.status = answer.statusCode;
          res.writeHead(answer.statusCode!, answer.headers);
          answer.pipe(res);
        },
      );
      forwarded.on("error", () => res.destroy());
      req.pipe(forwarded);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    context.env = {
      EXPORT_STORAGE: "s3",
      S3_BUCKET: BUCKET,
      S3_PREFIX: PREFIX,
      S3_REGION: "us-east-1",
      S3_ENDPOINT: endpoint,
      S3_FORCE_PATH_STYLE: "true",
      ...CREDENTIALS,
    };
    // Workers in this process find credentials where the SDK's default chain looks.
    Object.assign(process.env, CREDENTIALS);
    context.client = new S3Client({
      region: "us-east-1",
      endpoint: `http://127.0.0.1:${upstream.port}`,
      forcePathStyle: true,
      credentials: { accessKeyId: CREDENTIALS.AWS_ACCESS_KEY_ID, secretAccessKey: CREDENTIALS.AWS_SECRET_ACCESS_KEY },
    });
  });
  afterAll(async () => {
    context.release();
    context.client?.destroy();
    await new Promise((resolve) => proxy?.close(resolve));
    await s3rver?.close();
    if (directory) await rm(directory, { recursive: true, force: true });
  });
  return context;
}

export const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

const hmac = (key: Buffer | string, data: string) => createHmac("sha256", key).update(data).digest();
// RFC 3986 unreserved characters stay; everything else is percent-encoded, as SigV4 requires.
const uriEncode = (value: string) =>
  encodeURIComponent(value).replace(/[!'()*]/g, (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * For a request signed in its query string (a presigned URL): whether its
 * X-Amz-Signature is the one S3 would compute for this method, path, query and
 * host with s3rver's secret key. Other requests pass.
 */
function presignedSignatureMatches(req: IncomingMessage): boolean {
  const url = new URL(req.url!, "http://placeholder");
  const provided = url.searchParams.get("X-Amz-Signature");
  if (!provided) return true;
  const query = [...url.searchParams].filter(([name]) => name !== "X-Amz-Signature")
    .map(([name, value]) => `${uriEncode(name)}=${uriEncode(value)}`)
    .sort()
    .join("&");
  const signedHeaders = url.searchParams.get("X-Amz-SignedHeaders")!.split(";");
  const headers = signedHeaders.map((name) => `${name}:${String(req.headers[name] ?? "").trim()}\n`).join("");
  const path = url.pathname.split("/").map((segment) => uriEncode(decodeURIComponent(segment))).join("/");
  const canonicalRequest = [req.method, path, query, headers, signedHeaders.join(";"), "UNSIGNED-PAYLOAD"].join("\n");
  const [, date, region, service] = url.searchParams.get("X-Amz-Credential")!.split("/");
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", url.searchParams.get("X-Amz-Date"), scope, createHash("sha256").update(canonicalRequest).digest("hex")].join("\n");
  const key = hmac(hmac(hmac(hmac(`AWS4${CREDENTIALS.AWS_SECRET_ACCESS_KEY}`, date), region), service), "aws4_request");
  return hmac(key, stringToSign).toString("hex") === provided;
}
