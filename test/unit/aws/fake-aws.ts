import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from "@aws-sdk/client-s3";

/** An error shaped as the AWS SDK throws them: a name and the HTTP status in `$metadata`. */
export function awsError(name: string, status: number, message = name): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });
}

/** One request a fake client saw: the command's class name and its input. */
export interface RecordedRequest {
  command: string;
  input: Record<string, unknown>;
}

/**
 * A fake S3 client: buckets of objects in memory, the calls of the results store and the deployer
 * (conditional puts, paged listing with a small page size so paging is exercised), every request
 * recorded.
 */
export class FakeS3 {
  readonly objects = new Map<string, string>();
  readonly requests: RecordedRequest[] = [];
  constructor(
    readonly bucket: string,
    readonly pageSize = 2,
  ) {}

  async send(command: { input: object; constructor: { name: string } }): Promise<unknown> {
    const input = command.input as Record<string, unknown>;
    this.requests.push({ command: command.constructor.name, input });
    if (input.Bucket !== this.bucket) throw awsError("NoSuchBucket", 404);
    const key = String(input.Key ?? "");
    if (command instanceof GetObjectCommand) {
      const body = this.objects.get(key);
      if (body === undefined) throw awsError("NoSuchKey", 404);
      return { Body: { transformToString: async () => body } };
    }
    if (command instanceof PutObjectCommand) {
      if (input.IfNoneMatch === "*" && this.objects.has(key)) throw awsError("PreconditionFailed", 412);
      this.objects.set(key, String(input.Body));
      return {};
    }
    if (command instanceof ListObjectsV2Command) {
      const all = [...this.objects.keys()].filter((k) => k.startsWith(String(input.Prefix ?? ""))).sort();
      const start = input.ContinuationToken === undefined ? 0 : Number(input.ContinuationToken);
      const page = all.slice(start, start + this.pageSize);
      const more = start + this.pageSize < all.length;
      return {
        Contents: page.map((Key) => ({ Key })),
        IsTruncated: more,
        NextContinuationToken: more ? String(start + this.pageSize) : undefined,
      };
    }
    if (command instanceof DeleteObjectCommand) {
      this.objects.delete(key);
      return {};
    }
    if (command instanceof DeleteObjectsCommand) {
      const del = input.Delete as { Objects: Array<{ Key: string }> };
      for (const o of del.Objects) this.objects.delete(o.Key);
      return { Errors: [] };
    }
    throw new Error(`FakeS3: unexpected command ${command.constructor.name}`);
  }
}
