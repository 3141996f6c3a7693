import { status } from "@grpc/grpc-js";

/** An error the emulator answers to a call; `code` is the gRPC status Google answers in its place. */
export abstract class PubSubEmulatorError extends Error {
  abstract override readonly name: string;
  abstract readonly code: status;
}

/** A request field is malformed (bad resource name, oversize message, out-of-range setting). */
export class PubSubInvalidArgument extends PubSubEmulatorError {
  override readonly name = "PubSubInvalidArgument";
  readonly code = status.INVALID_ARGUMENT;
}

/** The named topic, subscription or ack id's subscription does not exist. */
export class PubSubNotFound extends PubSubEmulatorError {
  override readonly name = "PubSubNotFound";
  readonly code = status.NOT_FOUND;
}

/** A topic or subscription with that name exists already. */
export class PubSubAlreadyExists extends PubSubEmulatorError {
  override readonly name = "PubSubAlreadyExists";
  readonly code = status.ALREADY_EXISTS;
}

/** The call is valid but the resource is in a state that refuses it (e.g. a detached subscription). */
export class PubSubFailedPrecondition extends PubSubEmulatorError {
  override readonly name = "PubSubFailedPrecondition";
  readonly code = status.FAILED_PRECONDITION;
}

/** A Pub/Sub feature the emulator does not provide (snapshots, seek, schemas). */
export class PubSubUnimplemented extends PubSubEmulatorError {
  override readonly name = "PubSubUnimplemented";
  readonly code = status.UNIMPLEMENTED;
}

/** The state directory's log could not be written; the call is refused rather than acknowledged. */
export class PubSubStorageFailed extends PubSubEmulatorError {
  override readonly name = "PubSubStorageFailed";
  readonly code = status.UNAVAILABLE;
}
