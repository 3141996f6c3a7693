// Plain-object shapes of the Pub/Sub v1 messages as @grpc/proto-loader hands them over
// (camelCase, int64 as string, absent scalars undefined, repeated fields and maps always present).

/** google.protobuf.Duration */
export interface Duration {
  seconds?: string | number;
  nanos?: number;
}

/** google.protobuf.Timestamp */
export interface Timestamp {
  seconds?: string | number;
  nanos?: number;
}

/** google.pubsub.v1.Topic (the fields the emulator keeps). */
export interface TopicConfig {
  name: string;
  labels: Record<string, string>;
  messageStoragePolicy?: unknown;
  kmsKeyName?: string;
  messageRetentionDuration?: Duration;
  state?: string;
}

/** google.pubsub.v1.PushConfig */
export interface PushConfig {
  pushEndpoint?: string;
  attributes: Record<string, string>;
  oidcToken?: { serviceAccountEmail?: string; audience?: string };
  pubsubWrapper?: Record<string, never>;
  noWrapper?: { writeMetadata?: boolean };
}

/** google.pubsub.v1.Subscription (the fields the emulator keeps). */
export interface SubscriptionConfig {
  name: string;
  topic: string;
  pushConfig?: PushConfig;
  ackDeadlineSeconds: number;
  retainAckedMessages?: boolean;
  messageRetentionDuration: Duration;
  labels: Record<string, string>;
  enableMessageOrdering?: boolean;
  expirationPolicy?: { ttl?: Duration };
  filter?: string;
  deadLetterPolicy?: { deadLetterTopic?: string; maxDeliveryAttempts?: number };
  retryPolicy?: { minimumBackoff?: Duration; maximumBackoff?: Duration };
  detached?: boolean;
  enableExactlyOnceDelivery?: boolean;
  state?: string;
}

/** google.pubsub.v1.PubsubMessage as published. */
export interface PubsubMessageIn {
  data?: Buffer;
  attributes: Record<string, string>;
  messageId?: string;
  publishTime?: Timestamp;
  orderingKey?: string;
}

/** A message as the emulator stores it: immutable once published, shared by every subscription. */
export interface StoredMessage {
  /** Numeric message id; `String(seq)` is the `messageId` clients see. */
  seq: number;
  data: Buffer;
  attributes: Record<string, string>;
  orderingKey: string;
  publishTimeMs: number;
  /** Bytes counted against flow control: data plus attribute keys and values. */
  size: number;
}

/** google.pubsub.v1.ReceivedMessage as sent to subscribers. */
export interface ReceivedMessageOut {
  ackId: string;
  message: {
    data: Buffer;
    attributes: Record<string, string>;
    messageId: string;
    publishTime: { seconds: number; nanos: number };
    orderingKey: string;
  };
  deliveryAttempt: number;
}

/** Milliseconds in a Duration. */
export function durationMs(d: Duration | undefined): number | undefined {
  if (!d) return undefined;
  return Number(d.seconds ?? 0) * 1000 + Math.floor((d.nanos ?? 0) / 1e6);
}

/** A Duration of `ms` milliseconds. */
export function msToDuration(ms: number): Duration {
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}

/** A Timestamp of epoch milliseconds. */
export function msToTimestamp(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}
