import { appendFile } from "node:fs/promises";
import { z } from "zod";
import { type SerializedError, SerializedErrorSchema } from "../../core/serialized-error.js";

/** Topic of every workload end (exit, preemption, loss) on every host. */
export const HOST_EVENTS_TOPIC = "gangway-host-events";
/** Topic of preemption notices (the agent's metadata probe, or the local provider's injection). */
export const PREEMPTION_NOTICES_TOPIC = "gangway-preemption-notices";

/** The topics an agent publishes to. */
export type EventTopic = typeof HOST_EVENTS_TOPIC | typeof PREEMPTION_NOTICES_TOPIC;

/**
 * Why an event was published:
 * - `exited`: the workload ended (on its own, cancelled, or replaced by a new run) or could not start;
 * - `preempted`: the host is being preempted (metadata probe said TRUE, or injected);
 * - `lost`: the lease expired unrenewed and the host freed itself, killing the workload.
 */
export type HostEventKind = "exited" | "preempted" | "lost";

/** Where a result too large to travel in an event can be read: `ReadResult` on `agent`. */
export interface ResultRef {
  agent: string;
  jobId: string;
  attempt: number;
  bytes: number;
}

/** One event of a host, published as JSON. Fields of the run are absent when nothing was leased. */
export interface HostEvent {
  version: 1;
  kind: HostEventKind;
  /** Unique id; consumers de-duplicate on it (Pub/Sub delivers at least once). */
  eventId: string;
  /** Milliseconds since the epoch. */
  at: number;
  /** The agent, `host:port`. */
  agent: string;
  /** The host's own address (what the workload binds to). */
  address: string;
  leaseId?: string | undefined;
  jobId?: string | undefined;
  attempt?: number | undefined;
  epoch?: number | undefined;
  sliceName?: string | undefined;
  sliceIndex?: number | undefined;
  hostIndex?: number | undefined;
  exitCode?: number | null | undefined;
  signal?: string | null | undefined;
  /** True when the workload ended because gangway stopped it (Cancel, a new Run, a release). */
  cancelled?: boolean | undefined;
  /** The workload's JSON result, inline when small. */
  result?: unknown;
  resultRef?: ResultRef | undefined;
  error?: SerializedError | undefined;
  /** Free text: why (`lease expired`, `metadata endpoint says preempted` …). */
  reason?: string | undefined;
}

/** zod schema of {@link HostEvent}, for consumers of the topics. */
export const HostEventSchema: z.ZodType<HostEvent> = z.object({
  version: z.literal(1),
  kind: z.enum(["exited", "preempted", "lost"]),
  eventId: z.string().min(1),
  at: z.number(),
  agent: z.string(),
  address: z.string(),
  leaseId: z.string().optional(),
  jobId: z.string().optional(),
  attempt: z.number().int().optional(),
  epoch: z.number().int().optional(),
  sliceName: z.string().optional(),
  sliceIndex: z.number().int().optional(),
  hostIndex: z.number().int().optional(),
  exitCode: z.number().int().nullable().optional(),
  signal: z.string().nullable().optional(),
  cancelled: z.boolean().optional(),
  result: z.unknown().optional(),
  resultRef: z
    .object({ agent: z.string(), jobId: z.string(), attempt: z.number().int(), bytes: z.number().int() })
    .optional(),
  error: SerializedErrorSchema.optional(),
  reason: z.string().optional(),
}) as z.ZodType<HostEvent>;

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
  let chain: Promise<void> = Promise.resolve();
  return {
    publish(topic, event) {
      // Appends are chained so lines never interleave and keep their order.
      chain = chain.then(() => appendFile(path, `${JSON.stringify({ topic, event })}\n`));
      return chain;
    },
  };
}
