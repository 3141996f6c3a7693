import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** One request the fake endpoint answered: which service and operation, and what it carried. */
export interface FakeAwsCall {
  service: "s3" | "secretsmanager" | "sfn";
  operation: string;
  detail: Record<string, unknown>;
}

/** Decode an `aws-chunked` body (`<hex size>[;chunk-signature=…]\r\n<data>\r\n … 0\r\n<trailers>`). */
function decodeAwsChunked(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf("\r\n", at);
    if (eol < 0) break;
    const size = Number.parseInt(body.subarray(at, eol).toString("latin1").split(";")[0] ?? "0", 16);
    if (!size) break;
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks);
  const encoding = String(req.headers["content-encoding"] ?? "");
  const sha = String(req.headers["x-amz-content-sha256"] ?? "");
  return encoding.includes("aws-chunked") || sha.startsWith("STREAMING-") ? decodeAwsChunked(body) : body;
}

/**
 * A small stand-in for AWS on 127.0.0.1, reached through `AWS_ENDPOINT_URL`: Secrets Manager's
 * GetSecretValue, Step Functions' StartExecution / DescribeExecution / ListExecutions (JSON
 * protocols) and S3 objects, path-style, with conditional puts. Just enough to run the bundled
 * Lambdas against the real AWS SDK clients they carry.
 */
export async function startFakeAwsServer(secrets: Record<string, string>) {
  const calls: FakeAwsCall[] = [];
  const objects = new Map<string, Buffer>();
  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const target = String(req.headers["x-amz-target"] ?? "");
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { "content-type": "application/x-amz-json-1.1" });
        res.end(JSON.stringify(value));
      };
      if (target.startsWith("secretsmanager.")) {
        const input = JSON.parse(body.toString("utf8")) as { SecretId: string };
        calls.push({ service: "secretsmanager", operation: target.split(".")[1] ?? "", detail: input });
        const value = secrets[input.SecretId];
        if (value === undefined)
          return json(400, {
            __type: "ResourceNotFoundException",
            message: "Secrets Manager can't find the specified secret.",
          });
        return json(200, { ARN: input.SecretId, Name: input.SecretId, SecretString: value, VersionId: "v1" });
      }
      if (target.startsWith("AWSStepFunctions.")) {
        const operation = target.split(".")[1] ?? "";
        const input = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
        calls.push({ service: "sfn", operation, detail: input });
        if (operation === "StartExecution") {
          const arn = `${String(input.stateMachineArn).replace(":stateMachine:", ":execution:")}:${String(input.name)}`;
          return json(200, { executionArn: arn, startDate: Date.now() / 1000 });
        }
        if (operation === "ListExecutions") return json(200, { executions: [] });
        return json(400, { __type: "ExecutionDoesNotExist", message: "Execution Does Not Exist" });
      }
      // S3, path-style: /<bucket>/<key>
      const url = new URL(req.url ?? "/", "http://fake");
      const [, bucket = "", ...rest] = url.pathname.split("/");
      const key = decodeURIComponent(rest.join("/"));
      const id = `${bucket}/${key}`;
      calls.push({ service: "s3", operation: req.method ?? "", detail: { bucket, key } });
      const xmlError = (status: number, code: string) => {
        res.writeHead(status, { "content-type": "application/xml" });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`,
        );
      };
      if (req.method === "PUT") {
        if (req.headers["if-none-match"] === "*" && objects.has(id))
          return xmlError(412, "PreconditionFailed");
        objects.set(id, body);
        res.writeHead(200, { etag: '"1"' });
        return res.end();
      }
      if (req.method === "GET" || req.method === "HEAD") {
        const found = objects.get(id);
        if (!found) return xmlError(404, "NoSuchKey");
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": found.length });
        return res.end(req.method === "GET" ? found : undefined);
      }
      return xmlError(501, "NotImplemented");
    })().catch((e: unknown) => {
      res.writeHead(500);
      res.end(String(e));
    });
  });
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    calls,
    objects,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
