/**
 * The Step Functions API over HTTP (AWS JSON 1.0: `POST /`, `X-Amz-Target: AWSStepFunctions.<Op>`),
 * so `@aws-sdk/client-sfn` pointed at it by endpoint works unchanged.
 *
 * @example
 * const server = await startSfnServer({ engine, port: 0 });
 * const sfn = new SFNClient({ endpoint: server.url, region: "us-east-1", credentials });
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { SfnEngine } from "./engine.js";
import { SfnApiError } from "./errors.js";

/** Requests larger than this are refused before parsing (AWS's own cap is near 1 MiB + input). */
export const MAX_REQUEST_BYTES = 2 * 1024 * 1024;
const TARGET_PREFIX = "AWSStepFunctions.";

/** A running API server. */
export interface SfnServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/x-amz-json-1.0",
    "content-length": Buffer.byteLength(text),
    "x-amzn-requestid": crypto.randomUUID(),
  });
  res.end(text);
}

function sendError(res: ServerResponse, name: string, message: string, status = 400): void {
  res.setHeader("x-amzn-errortype", name);
  send(res, status, { __type: name, message });
}

/** The body as text, or undefined when it is over the cap (the rest is drained, not kept). */
function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BYTES) chunks.push(chunk);
    });
    req.on("end", () =>
      resolve(size > MAX_REQUEST_BYTES ? undefined : Buffer.concat(chunks).toString("utf8")),
    );
    req.on("error", reject);
  });
}

/** Handle one HTTP request against `engine`; never throws. */
export async function handleSfnRequest(
  engine: SfnEngine,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    if (req.method !== "POST") {
      sendError(res, "UnknownOperationException", "Only POST is supported", 404);
      return;
    }
    const target = String(req.headers["x-amz-target"] ?? "");
    if (!target.startsWith(TARGET_PREFIX)) {
      sendError(
        res,
        "UnknownOperationException",
        `Unknown operation: missing or foreign X-Amz-Target '${target}'`,
      );
      return;
    }
    const text = await readBody(req);
    if (text === undefined) {
      res.setHeader("connection", "close");
      sendError(res, "ValidationException", `Request body larger than ${MAX_REQUEST_BYTES} bytes`, 413);
      return;
    }
    let body: unknown = {};
    if (text.trim().length > 0) {
      try {
        body = JSON.parse(text);
      } catch (e) {
        sendError(res, "SerializationException", `Malformed JSON body: ${(e as Error).message}`);
        return;
      }
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      sendError(res, "SerializationException", "The request body must be a JSON object");
      return;
    }
    const result = await engine.call(target.slice(TARGET_PREFIX.length), body);
    send(res, 200, result);
  } catch (e) {
    if (e instanceof SfnApiError) sendError(res, e.name, e.message);
    else sendError(res, "InternalFailure", `Internal error: ${(e as Error)?.message ?? String(e)}`, 500);
  }
}

/** Serve `engine` on `host:port` (port 0 → an ephemeral port). */
export function startSfnServer(opts: {
  engine: SfnEngine;
  port?: number;
  host?: string;
}): Promise<SfnServer> {
  const host = opts.host ?? "127.0.0.1";
  const server = createServer((req, res) => {
    void handleSfnRequest(opts.engine, req, res);
  });
  server.keepAliveTimeout = 5000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        // An IPv6 address is bracketed in a URL: http://[::1]:PORT.
        url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
        port,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
