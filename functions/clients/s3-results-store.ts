import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import type { ResultsStore } from "../ports.js";
import { checkKey } from "./results-store.js";

/** The one call of the S3 client the store makes (a fake in unit tests, `S3Client` in a Lambda). */
export type S3Sender = Pick<S3Client, "send">;

/** Options of {@link createS3ResultsStore}. */
export interface S3ResultsStoreOptions {
  client: S3Sender;
  bucket: string;
  /** Put every key under this prefix (e.g. `results/`), so one bucket can hold other things. */
  prefix?: string | undefined;
}

const errorName = (e: unknown) => (e as { name?: string }).name ?? "";
const httpStatus = (e: unknown) =>
  (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0;

/** How many keys one DeleteObjects call takes (S3's limit). */
const DELETE_BATCH = 1000;

/**
 * The results store in an S3 bucket (the AWS deployment's store): one object per key.
 * `create` is a conditional write (`If-None-Match: *`), so the first writer wins across Lambdas;
 * `delete` removes the key and every key under `key/`, as the directory store does.
 *
 * @example
 * const store = createS3ResultsStore({ client: new S3Client({}), bucket: "gangway-results" });
 * await store.create("jobs/j1/attempts/1/outcome.json", "{}");
 */
export function createS3ResultsStore(options: S3ResultsStoreOptions): ResultsStore {
  const { client, bucket } = options;
  const prefix = options.prefix ?? "";
  if (prefix !== "" && !prefix.endsWith("/")) throw new RangeError(`store prefix must end in "/": ${prefix}`);
  const objectKey = (key: string) => `${prefix}${checkKey(key)}`;

  const listKeys = async (keyPrefix: string): Promise<string[]> => {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: `${prefix}${keyPrefix}`,
          ContinuationToken: token,
        }),
      );
      for (const o of page.Contents ?? []) if (o.Key !== undefined) out.push(o.Key.slice(prefix.length));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  };

  return {
    async get(key) {
      try {
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: objectKey(key) }));
        return out.Body ? await out.Body.transformToString("utf8") : "";
      } catch (e) {
        if (errorName(e) === "NoSuchKey" || httpStatus(e) === 404) return undefined;
        throw e;
      }
    },
    async put(key, value) {
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: objectKey(key),
          Body: value,
          ContentType: "text/plain; charset=utf-8",
        }),
      );
    },
    async create(key, value) {
      try {
        await client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: objectKey(key),
            Body: value,
            ContentType: "text/plain; charset=utf-8",
            IfNoneMatch: "*",
          }),
        );
        return true;
      } catch (e) {
        // 412: the key exists. 409: a concurrent conditional write to it is in flight, and one of
        // the two wins: either way this writer is not first.
        if (errorName(e) === "PreconditionFailed" || httpStatus(e) === 412) return false;
        if (errorName(e) === "ConditionalRequestConflict" || httpStatus(e) === 409) return false;
        throw e;
      }
    },
    async list(keyPrefix) {
      if (keyPrefix !== "") checkKey(keyPrefix.endsWith("/") ? keyPrefix : `${keyPrefix}x`);
      return (await listKeys(keyPrefix)).sort();
    },
    async delete(key) {
      const own = objectKey(key);
      const under = (await listKeys(`${checkKey(key)}/`)).map((k) => `${prefix}${k}`);
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: own }));
      for (let i = 0; i < under.length; i += DELETE_BATCH) {
        const batch = under.slice(i, i + DELETE_BATCH);
        const out = await client.send(
          new DeleteObjectsCommand({
            Bucket: bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        );
        const failed = out.Errors ?? [];
        if (failed.length > 0) {
          const first = failed[0];
          throw new Error(
            `S3 refused to delete ${failed.length} object(s) under ${key}: ${first?.Key}: ${first?.Code} ${first?.Message}`,
          );
        }
      }
    },
  };
}
