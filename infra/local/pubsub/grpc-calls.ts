import { type ServerUnaryCall, type ServiceError, type sendUnaryData, status } from "@grpc/grpc-js";
import type { PubSubLogger } from "./broker.js";
import { PubSubEmulatorError, PubSubUnimplemented } from "./errors.js";

/** The gRPC status an error is answered with: its own code for emulator errors, INTERNAL otherwise. */
export function toServiceError(error: unknown, logger: PubSubLogger): Partial<ServiceError> {
  if (error instanceof PubSubEmulatorError) return { code: error.code, details: error.message };
  const e = error as Error;
  logger.warn(`pubsub emulator: unexpected ${e?.name ?? "error"}: ${e?.stack ?? String(error)}`);
  return { code: status.INTERNAL, details: `internal error: ${e?.message ?? String(error)}` };
}

/** Wrap a (sync or async) handler as a grpc-js unary handler that always answers exactly once. */
export function unary<Req, Res>(
  logger: PubSubLogger,
  fn: (request: Req, call: ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    let result: Res | Promise<Res>;
    try {
      result = fn(call.request ?? ({} as Req), call);
    } catch (e) {
      callback(toServiceError(e, logger), null);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (r) => callback(null, r),
        (e: unknown) => callback(toServiceError(e, logger), null),
      );
    } else callback(null, result);
  };
}

/** A call the emulator does not provide: answered UNIMPLEMENTED at once. */
export function unimplemented(logger: PubSubLogger, what: string) {
  return unary<unknown, unknown>(logger, () => {
    throw new PubSubUnimplemented(`${what} is not supported by the gangway Pub/Sub emulator`);
  });
}
