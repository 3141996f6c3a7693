import type { PubSub } from "@google-cloud/pubsub";
import { type EventSink, HOST_EVENTS_TOPIC, PREEMPTION_NOTICES_TOPIC } from "./events.js";

/**
 * An {@link EventSink} that publishes to Google Cloud Pub/Sub (or its emulator, through
 * `PUBSUB_EMULATOR_HOST`) with an injected client. Each event is the message's JSON data; the
 * attributes `kind`, `jobId`, `attempt` let subscriptions filter without parsing.
 *
 * @example
 * const sink = createPubSubEventSink(new PubSub({ projectId: "gangway-local" }));
 */
export function createPubSubEventSink(pubsub: PubSub): EventSink {
  return {
    async publish(topic, event) {
      const attributes: Record<string, string> = { kind: event.kind, agent: event.agent };
      if (event.jobId !== undefined) attributes.jobId = event.jobId;
      if (event.attempt !== undefined) attributes.attempt = String(event.attempt);
      await pubsub.topic(topic).publishMessage({ json: event, attributes });
    },
  };
}

/**
 * Create the host-events and preemption-notices topics if they are missing (for local stacks and
 * emulators; in the cloud the deployment owns them). Idempotent.
 */
export async function ensureEventTopics(pubsub: PubSub): Promise<void> {
  for (const name of [HOST_EVENTS_TOPIC, PREEMPTION_NOTICES_TOPIC]) {
    const [exists] = await pubsub.topic(name).exists();
    if (exists) continue;
    try {
      await pubsub.createTopic(name);
    } catch (e) {
      if ((e as { code?: number }).code !== 6) throw e; // ALREADY_EXISTS: created meanwhile
    }
  }
}
