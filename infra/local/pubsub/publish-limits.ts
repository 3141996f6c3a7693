import { PubSubInvalidArgument } from "./errors.js";
import type { PubsubMessageIn } from "./types.js";

/** Google's publish limits. */
export const PUBLISH_LIMITS = {
  maxRequestBytes: 10 * 1024 * 1024,
  maxMessagesPerRequest: 1000,
  maxAttributes: 100,
  maxAttributeKeyBytes: 256,
  maxAttributeValueBytes: 1024,
  maxOrderingKeyBytes: 1024,
} as const;

/** Throw INVALID_ARGUMENT, naming the message and the rule, for a request Google would refuse. */
export function checkPublishRequest(messages: PubsubMessageIn[] | undefined): void {
  if (!messages || messages.length === 0)
    throw new PubSubInvalidArgument("messages: at least one message is required");
  if (messages.length > PUBLISH_LIMITS.maxMessagesPerRequest) {
    throw new PubSubInvalidArgument(`messages: at most 1000 per request, got ${messages.length}`);
  }
  let total = 0;
  messages.forEach((m, i) => {
    const data = m.data?.length ?? 0;
    const attrs = Object.entries(m.attributes ?? {});
    if (data === 0 && attrs.length === 0) {
      throw new PubSubInvalidArgument(`messages[${i}]: a message needs data or at least one attribute`);
    }
    if (attrs.length > PUBLISH_LIMITS.maxAttributes) {
      throw new PubSubInvalidArgument(`messages[${i}].attributes: at most 100 attributes`);
    }
    total += data;
    for (const [k, v] of attrs) {
      const kb = Buffer.byteLength(k);
      const vb = Buffer.byteLength(v);
      if (kb === 0 || kb > PUBLISH_LIMITS.maxAttributeKeyBytes || k.startsWith("goog")) {
        throw new PubSubInvalidArgument(
          `messages[${i}].attributes: key must be 1-256 bytes and not start with "goog"`,
        );
      }
      if (vb > PUBLISH_LIMITS.maxAttributeValueBytes) {
        throw new PubSubInvalidArgument(
          `messages[${i}].attributes[${k.slice(0, 50)}]: value over 1024 bytes`,
        );
      }
      total += kb + vb;
    }
    if (Buffer.byteLength(m.orderingKey ?? "") > PUBLISH_LIMITS.maxOrderingKeyBytes) {
      throw new PubSubInvalidArgument(`messages[${i}].ordering_key: over 1024 bytes`);
    }
    if (total > PUBLISH_LIMITS.maxRequestBytes) {
      throw new PubSubInvalidArgument(
        `Request payload size exceeds the limit: ${PUBLISH_LIMITS.maxRequestBytes} bytes (messages[${i}])`,
      );
    }
  });
}
