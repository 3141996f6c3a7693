import type { PubSub } from "@google-cloud/pubsub";
import { GangwayError } from "../../core/errors.js";
import { HOST_EVENTS_TOPIC, LAUNCH_REQUESTS_TOPIC, PREEMPTION_NOTICES_TOPIC } from "../../core/host-event.js";
import {
  type DeployPubSubOptions,
  parseDeployOptions,
  type ResolvedDeployOptions,
} from "./deploy-options.js";
import { pubsubServiceAgentSteps } from "./iam-steps.js";

export { type DeployPubSubOptions, InvalidDeployOptions } from "./deploy-options.js";

/** Each gangway topic and the API route its push subscription delivers to. */
export const GANGWAY_PUSH_ROUTES = [
  { topic: LAUNCH_REQUESTS_TOPIC, route: "/push/launch-requests" },
  { topic: HOST_EVENTS_TOPIC, route: "/push/host-events" },
  { topic: PREEMPTION_NOTICES_TOPIC, route: "/push/preemption-notices" },
] as const;

/** Dead-letter subscriptions keep what they hold this long (Pub/Sub's maximum, 7 days). */
const DEAD_LETTER_RETENTION_SECONDS = 7 * 24 * 3600;
const DEAD_LETTER_ACK_DEADLINE_SECONDS = 60;

/** What one deploy did (or, in a dry run, would do) to one resource. */
export interface DeployedResource {
  kind: "topic" | "dead-letter-topic" | "push-subscription" | "dead-letter-subscription";
  /** Resource id, e.g. `gangway-host-events-push`. */
  name: string;
  action: "created" | "updated" | "unchanged";
  /** Each setting changed, `field: before → after` (empty when created or unchanged). */
  changes: string[];
}

/** The outcome of {@link deployPubSub}. */
export interface DeployReport {
  project: string;
  dryRun: boolean;
  resources: DeployedResource[];
  /**
   * gcloud commands granting what the deployer cannot grant through Pub/Sub: the Pub/Sub service
   * agent's Token Creator role on the push service account, publisher on the dead-letter topics,
   * subscriber on the push subscriptions. Run once per project; re-running them is harmless.
   */
  iamSteps: string[];
}

/** A subscription exists but cannot be brought to the layout in place (another topic, detached). */
export class PubSubLayoutConflict extends GangwayError {
  override readonly name = "PubSubLayoutConflict";
}

/** Dead-letter topic of a gangway topic. */
export const deadLetterTopicOf = (topic: string): string => `${topic}-dead-letter`;
/** Push subscription of a gangway topic. */
export const pushSubscriptionOf = (topic: string): string => `${topic}-push`;
/** Pull subscription that keeps a dead-letter topic's messages readable. */
export const deadLetterSubscriptionOf = (topic: string): string => `${deadLetterTopicOf(topic)}-sub`;

interface Duration {
  seconds?: number | string | { toString(): string } | null;
  nanos?: number | null;
}
/** What we set on a subscription and compare on the next run (fields as the API names them). */
interface SubscriptionWanted {
  topic: string;
  ackDeadlineSeconds: number;
  labels: Record<string, string>;
  pushConfig?: {
    pushEndpoint: string;
    oidcToken: { serviceAccountEmail: string; audience: string };
  };
  retryPolicy?: { minimumBackoff: Duration; maximumBackoff: Duration };
  deadLetterPolicy?: { deadLetterTopic: string; maxDeliveryAttempts: number };
  messageRetentionDuration?: Duration;
}
/** A subscription as read back (proto fields: unset ones may be null). */
type SubscriptionRead = Record<string, unknown> & {
  topic?: string | null;
  detached?: boolean | null;
};

const notFound = (e: unknown) => (e as { code?: number }).code === 5;
const alreadyExists = (e: unknown) => (e as { code?: number }).code === 6;

const durationOf = (seconds: number): Duration => {
  const whole = Math.floor(seconds);
  return { seconds: whole, nanos: Math.round((seconds - whole) * 1e9) };
};
const durationMs = (d: Duration | null | undefined): number | undefined =>
  d ? Number(String(d.seconds ?? 0)) * 1000 + (d.nanos ?? 0) / 1e6 : undefined;
const show = (v: unknown) => (v === undefined || v === null || v === "" ? "(unset)" : JSON.stringify(v));

/** Compare a read subscription with what is wanted: the changed top-level fields, and how. */
function subscriptionDiff(
  current: SubscriptionRead,
  wanted: SubscriptionWanted,
): { fields: Array<keyof SubscriptionWanted>; changes: string[] } {
  const fields: Array<keyof SubscriptionWanted> = [];
  const changes: string[] = [];
  const note = (field: keyof SubscriptionWanted, what: string, before: unknown, after: unknown) => {
    if (!fields.includes(field)) fields.push(field);
    changes.push(`${what}: ${show(before)} → ${show(after)}`);
  };
  if (current.ackDeadlineSeconds !== wanted.ackDeadlineSeconds)
    note("ackDeadlineSeconds", "ackDeadlineSeconds", current.ackDeadlineSeconds, wanted.ackDeadlineSeconds);
  const labels = (current.labels ?? {}) as Record<string, string>;
  for (const [k, v] of Object.entries(wanted.labels)) {
    if (labels[k] !== v) note("labels", `labels.${k}`, labels[k], v);
  }
  const push = current.pushConfig as
    | { pushEndpoint?: string; oidcToken?: { serviceAccountEmail?: string; audience?: string } | null }
    | null
    | undefined;
  if (wanted.pushConfig) {
    const w = wanted.pushConfig;
    if (push?.pushEndpoint !== w.pushEndpoint)
      note("pushConfig", "pushConfig.pushEndpoint", push?.pushEndpoint, w.pushEndpoint);
    if (push?.oidcToken?.serviceAccountEmail !== w.oidcToken.serviceAccountEmail)
      note(
        "pushConfig",
        "pushConfig.oidcToken.serviceAccountEmail",
        push?.oidcToken?.serviceAccountEmail,
        w.oidcToken.serviceAccountEmail,
      );
    if (push?.oidcToken?.audience !== w.oidcToken.audience)
      note("pushConfig", "pushConfig.oidcToken.audience", push?.oidcToken?.audience, w.oidcToken.audience);
  } else if (push?.pushEndpoint) {
    note("pushConfig", "pushConfig.pushEndpoint", push.pushEndpoint, undefined);
  }
  if (wanted.retryPolicy) {
    const rp = current.retryPolicy as { minimumBackoff?: Duration; maximumBackoff?: Duration } | null;
    const [minNow, maxNow] = [durationMs(rp?.minimumBackoff), durationMs(rp?.maximumBackoff)];
    const [minWant, maxWant] = [
      durationMs(wanted.retryPolicy.minimumBackoff),
      durationMs(wanted.retryPolicy.maximumBackoff),
    ];
    const secs = (ms: number | undefined) => (ms === undefined ? undefined : `${ms / 1000}s`);
    if (minNow !== minWant) note("retryPolicy", "retryPolicy.minimumBackoff", secs(minNow), secs(minWant));
    if (maxNow !== maxWant) note("retryPolicy", "retryPolicy.maximumBackoff", secs(maxNow), secs(maxWant));
  }
  if (wanted.deadLetterPolicy) {
    const dl = current.deadLetterPolicy as { deadLetterTopic?: string; maxDeliveryAttempts?: number } | null;
    const w = wanted.deadLetterPolicy;
    if (dl?.deadLetterTopic !== w.deadLetterTopic)
      note("deadLetterPolicy", "deadLetterPolicy.deadLetterTopic", dl?.deadLetterTopic, w.deadLetterTopic);
    if (dl?.maxDeliveryAttempts !== w.maxDeliveryAttempts)
      note(
        "deadLetterPolicy",
        "deadLetterPolicy.maxDeliveryAttempts",
        dl?.maxDeliveryAttempts,
        w.maxDeliveryAttempts,
      );
  }
  if (wanted.messageRetentionDuration) {
    const now = durationMs(current.messageRetentionDuration as Duration | null);
    const want = durationMs(wanted.messageRetentionDuration);
    if (now !== want)
      note(
        "messageRetentionDuration",
        "messageRetentionDuration",
        now === undefined ? undefined : `${now / 1000}s`,
        `${(want ?? 0) / 1000}s`,
      );
  }
  return { fields, changes };
}

/** The subscriptions and topics gangway needs, for these options (full resource names). */
function layout(project: string, o: ResolvedDeployOptions) {
  const topicName = (id: string) => `projects/${project}/topics/${id}`;
  const labels = { "managed-by": "gangway", ...o.labels };
  return GANGWAY_PUSH_ROUTES.map(({ topic, route }) => ({
    topic,
    deadLetterTopic: deadLetterTopicOf(topic),
    push: {
      id: pushSubscriptionOf(topic),
      wanted: {
        topic: topicName(topic),
        ackDeadlineSeconds: o.ackDeadlineSeconds,
        labels,
        pushConfig: {
          pushEndpoint: `${o.apiUrl}${route}`,
          oidcToken: { serviceAccountEmail: o.pushServiceAccount, audience: o.audience },
        },
        retryPolicy: {
          minimumBackoff: durationOf(o.minBackoffSeconds),
          maximumBackoff: durationOf(o.maxBackoffSeconds),
        },
        deadLetterPolicy: {
          deadLetterTopic: topicName(deadLetterTopicOf(topic)),
          maxDeliveryAttempts: o.maxDeliveryAttempts,
        },
      } satisfies SubscriptionWanted,
    },
    deadLetters: {
      id: deadLetterSubscriptionOf(topic),
      wanted: {
        topic: topicName(deadLetterTopicOf(topic)),
        ackDeadlineSeconds: DEAD_LETTER_ACK_DEADLINE_SECONDS,
        labels,
        messageRetentionDuration: durationOf(DEAD_LETTER_RETENTION_SECONDS),
      } satisfies SubscriptionWanted,
    },
    labels,
  }));
}

async function ensureTopic(
  pubsub: PubSub,
  id: string,
  labels: Record<string, string>,
  kind: DeployedResource["kind"],
  dryRun: boolean,
): Promise<DeployedResource> {
  const topic = pubsub.topic(id);
  let current: { labels?: Record<string, string> | null } | undefined;
  try {
    [current] = await topic.getMetadata();
  } catch (e) {
    if (!notFound(e)) throw e;
  }
  if (!current) {
    if (!dryRun) {
      try {
        await pubsub.createTopic({ name: id, labels });
        return { kind, name: id, action: "created", changes: [] };
      } catch (e) {
        // Someone else made it meanwhile: compare with theirs below.
        if (!alreadyExists(e)) throw e;
        [current] = await topic.getMetadata();
      }
    } else return { kind, name: id, action: "created", changes: [] };
  }
  const have = current?.labels ?? {};
  const changes = Object.entries(labels)
    .filter(([k, v]) => have[k] !== v)
    .map(([k, v]) => `labels.${k}: ${show(have[k])} → ${show(v)}`);
  if (changes.length === 0) return { kind, name: id, action: "unchanged", changes };
  // Labels others put on the topic stay; ours are added or corrected.
  if (!dryRun) await topic.setMetadata({ labels: { ...have, ...labels } });
  return { kind, name: id, action: "updated", changes };
}

async function ensureSubscription(
  pubsub: PubSub,
  id: string,
  wanted: SubscriptionWanted,
  kind: DeployedResource["kind"],
  dryRun: boolean,
): Promise<DeployedResource> {
  const sub = pubsub.subscription(id);
  let current: SubscriptionRead | undefined;
  try {
    [current] = (await sub.getMetadata()) as unknown as [SubscriptionRead];
  } catch (e) {
    if (!notFound(e)) throw e;
  }
  if (!current) {
    if (dryRun) return { kind, name: id, action: "created", changes: [] };
    try {
      await pubsub.topic(wanted.topic).createSubscription(id, wanted as never);
      return { kind, name: id, action: "created", changes: [] };
    } catch (e) {
      if (!alreadyExists(e)) throw e;
      [current] = (await sub.getMetadata()) as unknown as [SubscriptionRead];
    }
  }
  if (current.topic !== wanted.topic || current.detached) {
    throw new PubSubLayoutConflict(
      `subscription ${id} is attached to ${current.detached ? "nothing (detached)" : String(current.topic)}, not ${wanted.topic}; delete it (its unacknowledged messages go with it) and deploy again`,
      { subscription: id, topic: current.topic ?? null, wanted: wanted.topic },
    );
  }
  const { fields, changes } = subscriptionDiff(current, wanted);
  if (fields.length === 0) return { kind, name: id, action: "unchanged", changes };
  if (!dryRun) {
    // One UpdateSubscription whose mask names only what changed: the subscription, its backlog
    // and its unacknowledged messages stay; nothing is deleted and recreated.
    const patch: Record<string, unknown> = {};
    for (const f of fields) patch[f] = wanted[f];
    if (fields.includes("labels")) patch.labels = { ...((current.labels ?? {}) as object), ...wanted.labels };
    await sub.setMetadata(patch as never);
  }
  return { kind, name: id, action: "updated", changes };
}

/**
 * Create or bring up to date gangway's Pub/Sub layout: the three topics, a dead-letter topic for
 * each with a pull subscription that keeps its messages readable, and a push subscription per
 * topic to `${apiUrl}/push/<route>` with OIDC tokens, a retry policy and a dead-letter policy.
 * Idempotent: a second run changes nothing and reports every resource `unchanged`; a changed URL
 * or policy is updated in place, never by deleting a subscription (no message is lost).
 * Throws `InvalidDeployOptions` on bad options, {@link PubSubLayoutConflict} on a subscription it
 * cannot update in place.
 *
 * @example
 * const report = await deployPubSub(new PubSub({ projectId }), { apiUrl, pushServiceAccount });
 * for (const step of report.iamSteps) console.log(step);
 */
export async function deployPubSub(pubsub: PubSub, options: DeployPubSubOptions): Promise<DeployReport> {
  const o = parseDeployOptions(options);
  await pubsub.getClientConfig();
  const project = pubsub.projectId;
  const resources: DeployedResource[] = [];
  const parts = layout(project, o);
  for (const p of parts) {
    resources.push(await ensureTopic(pubsub, p.topic, p.labels, "topic", o.dryRun));
    resources.push(await ensureTopic(pubsub, p.deadLetterTopic, p.labels, "dead-letter-topic", o.dryRun));
  }
  // Dead-letter subscriptions before the push subscriptions that forward to their topics:
  // a message published to a topic without a subscription is lost.
  for (const p of parts) {
    resources.push(
      await ensureSubscription(
        pubsub,
        p.deadLetters.id,
        p.deadLetters.wanted,
        "dead-letter-subscription",
        o.dryRun,
      ),
    );
  }
  for (const p of parts) {
    resources.push(await ensureSubscription(pubsub, p.push.id, p.push.wanted, "push-subscription", o.dryRun));
  }
  const iamSteps = pubsubServiceAgentSteps({
    project,
    projectNumber: o.projectNumber,
    pushServiceAccount: o.pushServiceAccount,
    deadLetterTopics: parts.map((p) => p.deadLetterTopic),
    pushSubscriptions: parts.map((p) => p.push.id),
  });
  return { project, dryRun: o.dryRun, resources, iamSteps };
}
