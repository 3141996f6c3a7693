import * as grpc from "@grpc/grpc-js";
import { serializeError } from "../../core/serialized-error.js";
import {
  AgentStopping,
  HostNotClean,
  InvalidAgentRequest,
  LeaseConflict,
  RunNotFound,
} from "../../functions/clients/agent/errors.js";
import {
  AcquireLeaseSchema,
  CancelSchema,
  type HostStatus,
  parseRequest,
  ReadOutputSchema,
  ReadResultSchema,
  ReleaseLeaseSchema,
  RenewLeaseSchema,
  RunSchema,
} from "../../functions/clients/agent/messages.js";
import { ERROR_TRAILER, hostAgentServiceDefinition } from "../../functions/clients/agent/proto.js";
import { createTokenCheck } from "./auth.js";
import type { HostAgent } from "./host-agent.js";

/** Trailer carrying the serialized error behind a failed call (JSON, binary metadata). */

function statusFor(error: unknown): grpc.status {
  if (error instanceof LeaseConflict || error instanceof HostNotClean) return grpc.status.FAILED_PRECONDITION;
  if (error instanceof InvalidAgentRequest) return grpc.status.INVALID_ARGUMENT;
  if (error instanceof AgentStopping) return grpc.status.UNAVAILABLE;
  if (error instanceof RunNotFound) return grpc.status.NOT_FOUND;
  return grpc.status.INTERNAL;
}

function failure(error: unknown): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  const serialized = serializeError(error);
  delete serialized.stack; // callers get the facts, not the agent's internals
  metadata.set(ERROR_TRAILER, Buffer.from(JSON.stringify(serialized)));
  return { code: statusFor(error), details: (error as Error).message ?? String(error), metadata };
}

const UNAUTHENTICATED: Partial<grpc.StatusObject> = {
  code: grpc.status.UNAUTHENTICATED,
  details: "missing or invalid bearer token (metadata authorization: Bearer <token>)",
};

type Unary = (request: unknown) => unknown;

/**
 * The gRPC face of a {@link HostAgent}: checks the bearer token, parses every request (answering
 * `INVALID_ARGUMENT` naming the field), maps refusals to status codes. Like grpc-node's health
 * service it is added to a server the caller owns.
 *
 * @example
 * new HostAgentService(agent, { token }).addToServer(server);
 */
export class HostAgentService {
  private readonly authorized: (m: grpc.Metadata) => boolean;
  private readonly streams = new Set<grpc.ServerWritableStream<unknown, unknown>>();

  constructor(
    private readonly agent: HostAgent,
    options: { token: string; log?: (line: string) => void; maxWatchStreams?: number },
  ) {
    this.authorized = createTokenCheck(options.token);
    this.maxWatchStreams = options.maxWatchStreams ?? 64;
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
  }

  private readonly log: (line: string) => void;
  /** Open Watch streams are bounded: a client cannot make the agent buffer without end. */
  private readonly maxWatchStreams: number;

  private unary(name: string, handler: Unary): grpc.handleUnaryCall<unknown, unknown> {
    return (call, callback) => {
      if (!this.authorized(call.metadata)) {
        callback(UNAUTHENTICATED);
        return;
      }
      let pending: unknown;
      try {
        pending = handler(call.request);
      } catch (e) {
        callback(failure(e));
        return;
      }
      Promise.resolve(pending).then(
        (reply) => callback(null, reply),
        (e: unknown) => {
          if (statusFor(e) === grpc.status.INTERNAL)
            this.log(`agent ${name}: ${(e as Error)?.stack ?? String(e)}`);
          callback(failure(e));
        },
      );
    };
  }

  private watch: grpc.handleServerStreamingCall<unknown, unknown> = (call) => {
    if (!this.authorized(call.metadata)) {
      call.emit("error", UNAUTHENTICATED);
      return;
    }
    if (this.streams.size >= this.maxWatchStreams) {
      call.emit("error", {
        code: grpc.status.RESOURCE_EXHAUSTED,
        details: `at most ${this.maxWatchStreams} Watch streams at once`,
      });
      return;
    }
    this.streams.add(call);
    const stop = this.agent.watch((s: HostStatus) => {
      if (!call.cancelled && !call.destroyed) call.write(s);
    });
    const end = () => {
      stop();
      this.streams.delete(call);
    };
    call.on("cancelled", end);
    call.on("close", end);
    call.on("error", end);
  };

  /** The handlers, by method name of `HostAgent` in agent.proto. */
  handlers(): grpc.UntypedServiceImplementation {
    const a = this.agent;
    return {
      Health: this.unary("Health", () => a.health()),
      AcquireLease: this.unary("AcquireLease", (r) =>
        a.acquireLease(parseRequest(AcquireLeaseSchema, r, "AcquireLease request")),
      ),
      RenewLease: this.unary("RenewLease", (r) =>
        a.renewLease(parseRequest(RenewLeaseSchema, r, "RenewLease request")),
      ),
      ReleaseLease: this.unary("ReleaseLease", (r) =>
        a.releaseLease(parseRequest(ReleaseLeaseSchema, r, "ReleaseLease request")),
      ),
      Run: this.unary("Run", (r) => a.startRun(parseRequest(RunSchema, r, "Run request"))),
      Cancel: this.unary("Cancel", (r) => a.cancel(parseRequest(CancelSchema, r, "Cancel request"))),
      Status: this.unary("Status", () => a.status()),
      Watch: this.watch,
      ReadOutput: this.unary("ReadOutput", (r) => {
        const q = parseRequest(ReadOutputSchema, r, "ReadOutput request");
        return a.readOutput(q.maxBytes, q.jobId, q.attempt);
      }),
      SliceStatus: this.unary("SliceStatus", () => a.sliceStatus()),
      ReadResult: this.unary("ReadResult", (r) => {
        const q = parseRequest(ReadResultSchema, r, "ReadResult request");
        return a.readResult(q.jobId, q.attempt);
      }),
    };
  }

  /** Register the service on `server`. */
  addToServer(server: grpc.Server): void {
    server.addService(hostAgentServiceDefinition(), this.handlers());
  }

  /** End every open Watch stream (before a server shuts down). */
  endStreams(): void {
    for (const s of this.streams) s.end();
    this.streams.clear();
  }
}
