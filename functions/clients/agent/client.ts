import * as grpc from "@grpc/grpc-js";
import { type SerializedError, SerializedErrorSchema } from "../../../core/serialized-error.js";
import type {
  CancelReply,
  HealthReply,
  HostStatus,
  LeaseReply,
  OutputReply,
  ResultReply,
  RunReply,
  SliceStatusReply,
} from "./messages.js";
import { ERROR_TRAILER, hostAgentServiceDefinition } from "./proto.js";

/** A failed agent call: the gRPC status code and, when the agent sent one, its serialized error. */
export class AgentCallError extends Error {
  override readonly name = "AgentCallError";
  constructor(
    readonly method: string,
    readonly code: grpc.status,
    message: string,
    readonly remote?: SerializedError,
  ) {
    super(`${method}: ${grpc.status[code] ?? code}: ${message}`);
  }
}

/** How to reach an agent: its token, and TLS (the CA that signed its cert) when it serves TLS. */
export interface AgentClientOptions {
  token: string;
  tls?: { ca: Buffer | string; serverName?: string } | undefined;
  /** Per-call deadline (default 60 s; Cancel gets grace + 60 s). */
  deadlineMs?: number;
}

/** Request fields of the agent's calls (see agent.proto); zero/empty means "default". */
export interface RunParams {
  leaseId: string;
  epoch: number;
  jobId: string;
  attempt: number;
  sliceIndex: number;
  sliceName: string;
  hostIndex: number;
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  graceMs?: number;
  /** Slice head only: agents of hosts 1..n-1 of the slice, in host order (see SliceStatus). */
  slicePeers?: string[];
  /** Period of `heartbeat` events while the run lasts (default: the agent's, 15 s). */
  heartbeatMs?: number;
  /** An in-place restart: take over this job's lease of an older epoch, lasting this long. */
  takeOverTtlMs?: number;
}

/** A Watch in progress: an async iterator of statuses; `close()` ends it. */
export interface StatusWatch extends AsyncIterable<HostStatus> {
  close(): void;
}

/** The typed client of one host agent. */
export interface AgentClient {
  readonly address: string;
  health(): Promise<HealthReply>;
  acquireLease(r: { leaseId: string; jobId: string; epoch: number; ttlMs: number }): Promise<LeaseReply>;
  renewLease(r: { leaseId: string; epoch: number; ttlMs: number }): Promise<LeaseReply>;
  releaseLease(r: { leaseId: string; epoch: number; graceMs?: number }): Promise<LeaseReply>;
  run(r: RunParams): Promise<RunReply>;
  cancel(r: { leaseId: string; epoch: number; graceMs?: number }): Promise<CancelReply>;
  status(): Promise<HostStatus>;
  watch(): StatusWatch;
  /** Output tails of the current run; with `run`, only of that job (and attempt): else RunNotFound. */
  readOutput(maxBytes?: number, run?: { jobId: string; attempt?: number }): Promise<OutputReply>;
  readResult(r?: { jobId?: string; attempt?: number }): Promise<ResultReply>;
  /** On a slice head: every host of its slice, as it sees them. */
  sliceStatus(): Promise<SliceStatusReply>;
  /** Any method with a raw request object (for tools and tests of malformed input). */
  call(method: string, request: unknown): Promise<unknown>;
  close(): void;
}

type RawClient = grpc.Client & Record<string, grpc.MethodDefinition<unknown, unknown> | unknown>;

let ctor: grpc.ServiceClientConstructor | undefined;
function clientConstructor(): grpc.ServiceClientConstructor {
  ctor ??= grpc.makeGenericClientConstructor(hostAgentServiceDefinition(), "HostAgent");
  return ctor;
}

function remoteError(metadata: grpc.Metadata | undefined): SerializedError | undefined {
  const raw = metadata?.get(ERROR_TRAILER)[0];
  if (!raw) return undefined;
  try {
    const parsed = SerializedErrorSchema.safeParse(JSON.parse(raw.toString()));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A typed client of the agent at `address` (`host:port`); every call carries the bearer token.
 *
 * @example
 * const agent = createAgentClient("127.0.1.1:40123", { token });
 * await agent.acquireLease({ leaseId: "exec-1", jobId: "train", epoch: 1, ttlMs: 30_000 });
 */
/**
 * A grace as the wire carries it. On the wire 0 means "the agent's default" (proto3 has no
 * presence), so a grace of 0 that was asked for (`cancelGraceSeconds: 0`: kill at once) goes as
 * 1 ms — SIGKILL a millisecond after SIGTERM — rather than as the agent's 5 s.
 */
const wireGrace = (graceMs: number | undefined): number => (graceMs === undefined ? 0 : Math.max(1, graceMs));

export function createAgentClient(address: string, options: AgentClientOptions): AgentClient {
  const channelCreds = options.tls
    ? grpc.credentials.createSsl(Buffer.from(options.tls.ca))
    : grpc.credentials.createInsecure();
  const channelOptions: grpc.ChannelOptions = {
    // Channelz keeps per-call statistics nobody reads here; a fan-out to hundreds of agents pays for them.
    "grpc.enable_channelz": 0,
    "grpc.max_receive_message_length": 16 * 1024 * 1024,
    "grpc.max_send_message_length": 16 * 1024 * 1024,
  };
  if (options.tls?.serverName) channelOptions["grpc.ssl_target_name_override"] = options.tls.serverName;
  const Ctor = clientConstructor();
  const raw = new Ctor(address, channelCreds, channelOptions) as unknown as RawClient;
  const metadata = () => {
    const m = new grpc.Metadata();
    m.set("authorization", `Bearer ${options.token}`);
    return m;
  };
  const deadlineMs = options.deadlineMs ?? 60_000;

  const call = <T>(method: string, request: unknown, extraMs = 0): Promise<T> =>
    new Promise((resolve, reject) => {
      const fn = raw[method] as (
        req: unknown,
        md: grpc.Metadata,
        opts: grpc.CallOptions,
        cb: (err: grpc.ServiceError | null, reply: T) => void,
      ) => void;
      if (typeof fn !== "function") {
        reject(new AgentCallError(method, grpc.status.UNIMPLEMENTED, "no such method"));
        return;
      }
      fn.call(raw, request, metadata(), { deadline: Date.now() + deadlineMs + extraMs }, (err, reply) => {
        if (err) reject(new AgentCallError(method, err.code, err.details, remoteError(err.metadata)));
        else resolve(reply);
      });
    });

  return {
    address,
    health: () => call("Health", {}),
    acquireLease: (r) => call("AcquireLease", r),
    renewLease: (r) => call("RenewLease", r),
    releaseLease: (r) => call("ReleaseLease", { ...r, graceMs: wireGrace(r.graceMs) }, r.graceMs ?? 0),
    run: (r) =>
      call(
        "Run",
        {
          env: {},
          cwd: "",
          slicePeers: [],
          heartbeatMs: 0,
          takeOverTtlMs: 0,
          ...r,
          graceMs: wireGrace(r.graceMs),
        },
        r.graceMs ?? 0,
      ),
    sliceStatus: () => call("SliceStatus", {}),
    cancel: (r) => call("Cancel", { ...r, graceMs: wireGrace(r.graceMs) }, r.graceMs ?? 0),
    status: () => call("Status", {}),
    readOutput: (maxBytes = 0, run) =>
      call("ReadOutput", { maxBytes, jobId: run?.jobId ?? "", attempt: run?.attempt ?? 0 }),
    readResult: (r = {}) => call("ReadResult", { jobId: r.jobId ?? "", attempt: r.attempt ?? 0 }),
    call: (method, request) => call(method, request),
    watch() {
      const stream = (
        raw.Watch as (req: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<HostStatus>
      ).call(raw, {}, metadata());
      const queue: HostStatus[] = [];
      let failure: Error | undefined;
      let ended = false;
      let wake: (() => void) | undefined;
      const poke = () => {
        wake?.();
        wake = undefined;
      };
      stream.on("data", (s: HostStatus) => {
        queue.push(s);
        poke();
      });
      stream.on("error", (e: grpc.ServiceError) => {
        if (e.code !== grpc.status.CANCELLED) failure = new AgentCallError("Watch", e.code, e.details);
        ended = true;
        poke();
      });
      stream.on("end", () => {
        ended = true;
        poke();
      });
      return {
        close: () => stream.cancel(),
        async *[Symbol.asyncIterator]() {
          try {
            for (;;) {
              const next = queue.shift();
              if (next) {
                yield next;
                continue;
              }
              if (failure) throw failure;
              if (ended) return;
              await new Promise<void>((r) => {
                wake = r;
              });
            }
          } finally {
            // Leaving the loop early (break, return, throw) ends the stream on the agent too.
            if (!ended) stream.cancel();
          }
        },
      };
    },
    close: () => raw.close(),
  };
}
