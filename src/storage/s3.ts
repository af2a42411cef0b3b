// Export files in an S3 bucket (AWS or an S3-compatible service), shared by
// every worker and gateway. The task's stream goes straight into a multipart
// upload: memory holds a few parts, whatever the export's size, and the object
// appears under its key only when the upload completes. Downloads are redirects
// to presigned URLs, or streamed through the gateway.
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  NotFound,
  S3Client,
  type _Object,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { PassThrough, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Config } from "../config.ts";
import type { Log } from "../log.ts";
import { contentTypeOf, EXPORT_FILE_NAME, ExportFileGone, isEarlierAttempt, type ExportStorage, type StoredFile } from "./storage.ts";

type S3Settings = Extract<Config["exportStorage"], { kind: "s3" }>;

/** S3's minimum part size is 5 MiB; 8 MiB parts, two in flight, keep an upload's memory near 24 MiB and allow exports up to 80 GB. */
const PART_SIZE = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT = 2;

const GONE_MESSAGE = "The export file is no longer in storage; request a new export.";

const isMissing = (error: unknown) =>
  error instanceof NoSuchKey || error instanceof NotFound || (error as { name?: string }).name === "NoSuchKey";

export function s3Storage(settings: S3Settings, log: Log): ExportStorage {
  const client = new S3Client({
    region: settings.region,
    endpoint: settings.endpoint,
    forcePathStyle: settings.forcePathStyle,
    // S3-compatible services differ in which of the SDK's newer default
    // checksums they accept; send and check them only where S3 requires them
    // (the export's own sha256 is computed on the way in any case).
    ...(settings.endpoint ? { requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" } : {}),
  });
  const { bucket, prefix } = settings;

  const keyOf = (file: StoredFile) => {
    if (file.objectKey === null) {
      throw new ExportFileGone("The export file was written to a worker's disk before EXPORT_STORAGE=s3; request a new export.");
    }
    return file.objectKey;
  };

  const remove = async (key: string) => {
    // DeleteObject succeeds for a missing key, so ask first to report what was there.
    const there = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(
      () => true,
      (error) => {
        if (isMissing(error)) return false;
        throw error;
      },
    );
    if (there) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    return there;
  };

  /** Every export object under the prefix whose name starts with `namePrefix`. */
  async function* exportObjects(namePrefix = ""): AsyncGenerator<_Object & { Key: string }> {
    let ContinuationToken: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix + namePrefix, ContinuationToken }),
      );
      for (const object of page.Contents ?? []) {
        const name = object.Key?.slice(prefix.length);
        if (name && !name.includes("/") && EXPORT_FILE_NAME.test(name)) yield object as _Object & { Key: string };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  return {
    kind: "s3",

    async save(fileName, stages, signal) {
      const key = prefix + fileName;
      const body = new PassThrough();
      const upload = new Upload({
        client,
        params: { Bucket: bucket, Key: key, Body: body, ContentType: contentTypeOf(fileName) },
        partSize: PART_SIZE,
        queueSize: PARTS_IN_FLIGHT,
        // Aborted below, so a failed abort cannot hide why the upload failed.
        leavePartsOnError: true,
      });
      const uploaded = upload.done();
      // An upload that fails stops reading; fail the pipeline instead of waiting on it.
      uploaded.catch((error) => body.destroy(error));
      try {
        await pipeline([...stages, body], { signal });
        await uploaded;
      } catch (error) {
        await uploaded.catch(() => {});
        if (upload.uploadId) {
          await client
            .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: upload.uploadId }))
            .catch((abortError) =>
              log.warn({ key, error: abortError.message }, "could not abort the export's multipart upload; the bucket's lifecycle rule will"),
            );
        }
        throw error;
      }
      return key;
    },

    objectKeyOf: (fileName) => prefix + fileName,

    async read(fileName) {
      const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: prefix + fileName })).catch((error) => {
        if (isMissing(error)) return undefined;
        throw error;
      });
      return object ? Buffer.from(await object.Body!.transformToByteArray()) : undefined;
    },

    remove: (file) => remove(keyOf(file)),

    async removeEarlierAttempts(kind, exportId, attempt) {
      for await (const object of exportObjects(`${kind}-${exportId}-`)) {
        if (isEarlierAttempt(object.Key.slice(prefix.length), kind, exportId, attempt)) await remove(object.Key);
      }
    },

    async removeWrittenBefore(cutoff) {
      let removed = 0;
      for await (const object of exportObjects()) {
        if (object.LastModified && object.LastModified < cutoff && (await remove(object.Key))) removed++;
      }
      return removed;
    },

    async open(file) {
      const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: keyOf(file) })).catch((error) => {
        if (isMissing(error)) throw new ExportFileGone(GONE_MESSAGE);
        throw error;
      });
      const stream = object.Body as Readable;
      return {
        size: object.ContentLength!,
        stream,
        close: async () => void stream.destroy(),
      };
    },

    async downloadUrl(file) {
      const key = keyOf(file);
      // A redirect to a missing object would show the client S3's error page instead of ours.
      await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch((error) => {
        if (isMissing(error)) throw new ExportFileGone(GONE_MESSAGE);
        throw error;
      });
      return getSignedUrl(
        client,
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          ResponseContentDisposition: `attachment; filename="${file.fileName.split("/").pop()}"`,
          ResponseContentType: contentTypeOf(file.fileName),
        }),
        { expiresIn: settings.presignedUrlSeconds },
      );
    },

    localPath: () => undefined,

    describe: (file) => (file.objectKey === null ? file.fileName : `s3://${bucket}/${file.objectKey}`),
  };
}
