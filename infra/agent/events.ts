import { appendFile } from "node:fs/promises";
import type { HOST_EVENTS_TOPIC, HostEvent, PREEMPTION_NOTICES_TOPIC } from "../../core/host-event.js";

// The event's shape and the topics are the control plane's contract: defined once, in core.
export {
  HOST_EVENTS_TOPIC,
  type HostEvent,
  HostEventSchema,
  PREEMPTION_NOTICES_TOPIC,
} from "../../core/host-event.js";

/** The topics an agent publishes to. */
export type EventTopic = typeof HOST_EVENTS_TOPIC | typeof PREEMPTION_NOTICES_TOPIC;

/**
 * Why an event was published (see core/host-event.ts):
 * - `exited`: the workload ended (on its own, cancelled, or replaced by a new run) or could not start;
 * - `preempted`: the host is being preempted (metadata probe said TRUE, or injected);
 * - `lost`: the lease expired unrenewed and the host freed itself, killing the workload (or a slice
 *   head lost contact with one of its hosts);
 * - `heartbeat`: the workload of a lease is still running.
 */
export type HostEventKind = HostEvent["kind"];

/** Where a result too large to travel in an event can be read: `ReadResult` on `agent`. */
export type ResultRef = NonNullable<HostEvent["resultRef"]>;

/** Where agents (and the local provider) publish their events. */
export interface EventSink {
  publish(topic: EventTopic, event: HostEvent): Promise<void>;
}

/** A sink that drops everything (an agent run with no event transport configured). */
export const discardEvents: EventSink = { publish: async () => {} };

/**
 * A sink that appends one JSON line `{topic, event}` per event to a file: a transport-free record,
 * handy on a single machine and in integration tests that read what agents published.
 */
export function createJsonLinesEventSink(path: string): EventSink {
  // Settles (never rejects) once the latest append has: the next one waits for it, whatever it gave.
  let tail: Promise<void> = Promise.resolve();
  return {
    publish(topic, event) {
      // Appends are chained so lines never interleave and keep their order; each publish answers
      // for its own append only, so one failure (a missing directory, a full disk) is not
      // repeated to every later publish.
      const line = `${JSON.stringify({ topic, event })}\n`;
      const append = tail.then(() => appendFile(path, line));
      tail = append.catch(() => {});
      return append;
    },
  };
}
