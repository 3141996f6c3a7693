import { PubSubInvalidArgument } from "./errors.js";
import { parseResourceName } from "./names.js";
import {
  type Duration,
  durationMs,
  msToDuration,
  type PushConfig,
  type SubscriptionConfig,
  type TopicConfig,
} from "./types.js";

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/** Google's defaults and limits for subscriptions and topics. */
export const LIMITS = {
  defaultAckDeadlineSeconds: 10,
  minAckDeadlineSeconds: 10,
  maxAckDeadlineSeconds: 600,
  defaultSubscriptionRetentionMs: 7 * DAY,
  minRetentionMs: 10 * MINUTE,
  maxSubscriptionRetentionMs: 7 * DAY,
  maxTopicRetentionMs: 31 * DAY,
  defaultMaxDeliveryAttempts: 5,
  minMaxDeliveryAttempts: 5,
  maxMaxDeliveryAttempts: 100,
  defaultMinBackoffMs: 10_000,
  defaultMaxBackoffMs: 600_000,
  maxBackoffMs: 600_000,
  maxLabels: 64,
} as const;

function checkLabels(labels: unknown, field: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (labels === undefined || labels === null) return out;
  if (typeof labels !== "object") throw new PubSubInvalidArgument(`${field}: expected a map of strings`);
  const entries = Object.entries(labels as Record<string, unknown>);
  if (entries.length > LIMITS.maxLabels) throw new PubSubInvalidArgument(`${field}: at most 64 labels`);
  for (const [k, v] of entries) {
    if (!/^[a-z][a-z0-9_-]{0,62}$/.test(k))
      throw new PubSubInvalidArgument(`${field}: invalid label key ${k}`);
    if (typeof v !== "string" || !/^[a-z0-9_-]{0,63}$/.test(v)) {
      throw new PubSubInvalidArgument(`${field}.${k}: invalid label value`);
    }
    out[k] = v;
  }
  return out;
}

function checkDuration(
  d: Duration | undefined,
  field: string,
  minMs: number,
  maxMs: number,
): Duration | undefined {
  const ms = durationMs(d);
  if (ms === undefined) return undefined;
  if (!Number.isFinite(ms) || ms < minMs || ms > maxMs) {
    throw new PubSubInvalidArgument(`${field}: must be between ${minMs / 1000}s and ${maxMs / 1000}s`);
  }
  return msToDuration(ms);
}

/** Validate a CreateTopic/UpdateTopic body; returns the config the emulator keeps. */
export function validateTopic(input: Partial<TopicConfig> & Record<string, unknown>): TopicConfig {
  parseResourceName(input.name, "topics", "name");
  if (input.schemaSettings)
    throw new PubSubInvalidArgument("schema_settings: schemas are not supported here");
  const ingestion = input.ingestionDataSourceSettings as { source?: string } | undefined;
  if (ingestion?.source)
    throw new PubSubInvalidArgument("ingestion_data_source_settings: not supported here");
  const topic: TopicConfig = {
    name: input.name as string,
    labels: checkLabels(input.labels, "labels"),
    state: "ACTIVE",
  };
  if (input.messageStoragePolicy) topic.messageStoragePolicy = input.messageStoragePolicy;
  if (input.kmsKeyName) topic.kmsKeyName = input.kmsKeyName;
  const retention = checkDuration(
    input.messageRetentionDuration,
    "message_retention_duration",
    LIMITS.minRetentionMs,
    LIMITS.maxTopicRetentionMs,
  );
  if (retention) topic.messageRetentionDuration = retention;
  return topic;
}

function checkPushConfig(push: PushConfig | undefined): PushConfig | undefined {
  if (!push?.pushEndpoint) return undefined;
  let url: URL;
  try {
    url = new URL(push.pushEndpoint);
  } catch {
    throw new PubSubInvalidArgument(
      `push_config.push_endpoint: not a URL: ${push.pushEndpoint.slice(0, 200)}`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new PubSubInvalidArgument("push_config.push_endpoint: must be an http or https URL");
  }
  const out: PushConfig = { pushEndpoint: url.href, attributes: { ...(push.attributes ?? {}) } };
  if (push.oidcToken) {
    const email = push.oidcToken.serviceAccountEmail ?? "";
    if (!/^[^@\s]+@[^@\s]+$/.test(email)) {
      throw new PubSubInvalidArgument(
        "push_config.oidc_token.service_account_email: a service account email is required",
      );
    }
    out.oidcToken = { serviceAccountEmail: email, audience: push.oidcToken.audience ?? "" };
  }
  if (push.noWrapper) out.noWrapper = { writeMetadata: push.noWrapper.writeMetadata ?? false };
  else out.pubsubWrapper = {};
  return out;
}

/** Validate a Subscription (create or the result of an update); fills Google's defaults. */
export function validateSubscription(
  input: Partial<SubscriptionConfig> & Record<string, unknown>,
): SubscriptionConfig {
  parseResourceName(input.name, "subscriptions", "name");
  if (input.topic !== "_deleted-topic_") parseResourceName(input.topic, "topics", "topic");
  for (const unsupported of ["bigqueryConfig", "cloudStorageConfig", "bigtableConfig"]) {
    const v = input[unsupported] as Record<string, unknown> | undefined;
    if (v && Object.keys(v).length > 0) throw new PubSubInvalidArgument(`${unsupported}: not supported here`);
  }
  if (input.filter) throw new PubSubInvalidArgument("filter: subscription filters are not supported here");
  const ack = input.ackDeadlineSeconds || LIMITS.defaultAckDeadlineSeconds;
  if (!Number.isInteger(ack) || ack < LIMITS.minAckDeadlineSeconds || ack > LIMITS.maxAckDeadlineSeconds) {
    throw new PubSubInvalidArgument("ack_deadline_seconds: must be between 10 and 600");
  }
  const sub: SubscriptionConfig = {
    name: input.name as string,
    topic: input.topic as string,
    ackDeadlineSeconds: ack,
    messageRetentionDuration:
      checkDuration(
        input.messageRetentionDuration,
        "message_retention_duration",
        LIMITS.minRetentionMs,
        LIMITS.maxSubscriptionRetentionMs,
      ) ?? msToDuration(LIMITS.defaultSubscriptionRetentionMs),
    labels: checkLabels(input.labels, "labels"),
    retainAckedMessages: input.retainAckedMessages ?? false,
    enableMessageOrdering: input.enableMessageOrdering ?? false,
    enableExactlyOnceDelivery: input.enableExactlyOnceDelivery ?? false,
    detached: input.detached ?? false,
    state: "ACTIVE",
  };
  const push = checkPushConfig(input.pushConfig);
  if (push) sub.pushConfig = push;
  if (input.expirationPolicy) sub.expirationPolicy = input.expirationPolicy;
  const dlp = input.deadLetterPolicy;
  if (dlp?.deadLetterTopic) {
    parseResourceName(dlp.deadLetterTopic, "topics", "dead_letter_policy.dead_letter_topic");
    const max = dlp.maxDeliveryAttempts || LIMITS.defaultMaxDeliveryAttempts;
    if (
      !Number.isInteger(max) ||
      max < LIMITS.minMaxDeliveryAttempts ||
      max > LIMITS.maxMaxDeliveryAttempts
    ) {
      throw new PubSubInvalidArgument("dead_letter_policy.max_delivery_attempts: must be between 5 and 100");
    }
    sub.deadLetterPolicy = { deadLetterTopic: dlp.deadLetterTopic, maxDeliveryAttempts: max };
  }
  const rp = input.retryPolicy;
  if (rp) {
    const min = durationMs(rp.minimumBackoff) ?? LIMITS.defaultMinBackoffMs;
    const max = durationMs(rp.maximumBackoff) ?? LIMITS.defaultMaxBackoffMs;
    if (min < 0 || min > LIMITS.maxBackoffMs || max < 0 || max > LIMITS.maxBackoffMs || min > max) {
      throw new PubSubInvalidArgument(
        "retry_policy: minimum_backoff and maximum_backoff must be within 0-600s, minimum <= maximum",
      );
    }
    sub.retryPolicy = { minimumBackoff: msToDuration(min), maximumBackoff: msToDuration(max) };
  }
  return sub;
}

function camel(path: string): string {
  return path.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Apply an UpdateTopic/UpdateSubscription field mask: copy each named top-level field of `patch`
 * onto `current`. Fields outside `mutable` are refused with INVALID_ARGUMENT, as Google does.
 */
export function applyUpdateMask<T extends object>(
  current: T,
  patch: Record<string, unknown>,
  paths: readonly string[] | undefined,
  mutable: ReadonlySet<string>,
): T {
  if (!paths || paths.length === 0)
    throw new PubSubInvalidArgument("update_mask: at least one path is required");
  const out: Record<string, unknown> = { ...(current as Record<string, unknown>) };
  for (const path of paths) {
    const top = path.split(".")[0] ?? "";
    if (!mutable.has(top)) throw new PubSubInvalidArgument(`update_mask: ${path} cannot be updated`);
    const key = camel(top);
    if (patch[key] === undefined) delete out[key];
    else out[key] = patch[key];
  }
  return out as T;
}

/** Fields UpdateSubscription may change. */
export const MUTABLE_SUBSCRIPTION_FIELDS: ReadonlySet<string> = new Set([
  "push_config",
  "ack_deadline_seconds",
  "retain_acked_messages",
  "message_retention_duration",
  "labels",
  "expiration_policy",
  "dead_letter_policy",
  "retry_policy",
  "enable_exactly_once_delivery",
  "detached",
]);

/** Fields UpdateTopic may change. */
export const MUTABLE_TOPIC_FIELDS: ReadonlySet<string> = new Set([
  "labels",
  "message_storage_policy",
  "kms_key_name",
  "message_retention_duration",
]);
