import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { parseClusterSpec } from "../../../core/cluster-spec.js";
import { GangwayError } from "../../../core/errors.js";
import { toValidationIssues } from "../../../core/validation.js";
import { createTokenCheckForHeader } from "./admin-auth.js";
import { UnknownSlice } from "./errors.js";
import type { LocalProvider } from "./local-provider.js";

const MAX_BODY_BYTES = 64 * 1024;

const PreemptBody = z.strictObject({ slice: z.string().min(1).max(256) });
const RequestBody = z.strictObject({
  type: z.string().min(1).max(64),
  count: z.number().int().min(1).max(4096),
});
const ReleaseBody = z.strictObject({ names: z.array(z.string().min(1).max(256)).max(4096) });

/** A running admin endpoint of a local cluster. */
export interface ClusterAdmin {
  /** `http://127.0.0.1:PORT` */
  url: string;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8") || "null") as unknown;
  } catch {
    throw new HttpError(400, "body is not JSON");
  }
}

function parse<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input, { reportInput: true });
  if (r.success) return r.data;
  const issues = toValidationIssues(r.error.issues).map((i) => i.message);
  throw new HttpError(400, `invalid body: ${issues.join("; ")}`, { issues });
}

/**
 * Serve a small HTTP admin API of a local cluster on 127.0.0.1 (bearer token required), so that
 * `gangway preempt` and tools reach a cluster running in another process:
 * - `GET  /v1/slices` → `{slices, pending}`
 * - `POST /v1/preempt {slice}` → `{slice, notices}` (404 for an unknown slice)
 * - `POST /v1/request {type, count}` → `{requested, pending}` (answers at once; slices come later)
 * - `POST /v1/release {names}` → `{released}`
 */
export async function startClusterAdmin(
  provider: LocalProvider,
  options: { token: string; host?: string; port?: number },
): Promise<ClusterAdmin> {
  const authorized = createTokenCheckForHeader(options.token);
  const route = async (req: IncomingMessage): Promise<unknown> => {
    if (!authorized(req.headers.authorization)) throw new HttpError(401, "missing or invalid bearer token");
    const path = (req.url ?? "").split("?")[0];
    const method = req.method ?? "GET";
    if (method === "GET" && path === "/v1/slices") {
      return { slices: provider.listSlices(), pending: provider.pendingSlices() };
    }
    if (method !== "POST") {
      const known = ["/v1/slices", "/v1/preempt", "/v1/request", "/v1/release"].includes(path ?? "");
      throw new HttpError(known ? 405 : 404, `no route ${method} ${path}`);
    }
    switch (path) {
      case "/v1/preempt": {
        const { slice } = parse(PreemptBody, await readJson(req));
        const done = await provider.preemptSlice(slice);
        void done.replacement.catch(() => {});
        return { slice: done.slice, notices: done.notices };
      }
      case "/v1/request": {
        const { type, count } = parse(RequestBody, await readJson(req));
        parseClusterSpec(`${type}x${count}`); // an unknown type is the caller's error: answered 400 now
        const before = provider.pendingSlices().length;
        provider.requestSlices(type, count).catch(() => {});
        return { requested: provider.pendingSlices().length - before, pending: provider.pendingSlices() };
      }
      case "/v1/release": {
        const { names } = parse(ReleaseBody, await readJson(req));
        return { released: await provider.releaseSlices(names) };
      }
      default:
        throw new HttpError(404, `no route ${method} ${path}`);
    }
  };
  const respond = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };
  const server = createServer((req, res) => {
    route(req).then(
      (body) => respond(res, 200, body),
      (e: unknown) => {
        if (e instanceof HttpError) respond(res, e.status, { error: e.message, ...e.extra });
        else if (e instanceof UnknownSlice) respond(res, 404, { error: e.message, name: e.name });
        else if (e instanceof GangwayError) respond(res, 400, { error: e.message, name: e.name });
        else respond(res, 500, { error: String(e) });
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address.includes(":") ? `[${address}]` : address}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
