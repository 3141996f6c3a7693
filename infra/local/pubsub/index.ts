// Public surface of the embedded Pub/Sub emulator.
export type { Clock, PubSubLogger } from "./broker.js";
export { type PubSubEmulator, type PubSubEmulatorOptions, startPubSubEmulator } from "./emulator.js";
export {
  PubSubAlreadyExists,
  PubSubEmulatorError,
  PubSubFailedPrecondition,
  PubSubInvalidArgument,
  PubSubNotFound,
  PubSubStorageFailed,
  PubSubUnimplemented,
} from "./errors.js";
export { type JsonWebKeySet, PUSH_TOKEN_ISSUER, type PublicJwk, type PushTokenClaims } from "./oidc.js";
export { PUSH_ACK_STATUSES } from "./push-delivery.js";
