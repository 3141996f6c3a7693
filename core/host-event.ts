import { z } from "zod";
import { SerializedErrorSchema } from "./serialized-error.js";

/** Topic of every workload end (exit, preemption, loss) and heartbeat on every host. */
export const HOST_EVENTS_TOPIC = "gangway-host-events";
/** Topic of preemption notices (agents' metadata probes, the provider, Cloud Logging sinks). */
export const PREEMPTION_NOTICES_TOPIC = "gangway-preemption-notices";
/** Topic of launch requests (a job spec per message). */
export const LAUNCH_REQUESTS_TOPIC = "gangway-launch-requests";

/**
 * One event of a host agent, published as JSON on the host-events topic (and, for `preempted`,
 * on the notices topic too):
 * - `exited`: the workload ended on its own, was cancelled by its agent shutting down, or could
 *   not start (a run its lease holder ended is not published: the holder has the reply);
 * - `preempted`: the host is being preempted (metadata probe TRUE, or injected);
 * - `lost`: the lease expired unrenewed and the host freed itself, killing the workload;
 * - `heartbeat`: the workload of a lease is still running (keeps the attempt alive).
 */
export const HostEventSchema = z.object({
  version: z.literal(1),
  kind: z.enum(["exited", "preempted", "lost", "heartbeat"]),
  /** Unique id; consumers de-duplicate on it (Pub/Sub delivers at least once). */
  eventId: z.string().min(1).max(200),
  at: z.number(),
  agent: z.string().max(300),
  address: z.string().max(300),
  leaseId: z.string().max(300).optional(),
  jobId: z.string().max(300).optional(),
  attempt: z.int().min(0).optional(),
  epoch: z.int().min(0).optional(),
  sliceName: z.string().max(300).optional(),
  sliceIndex: z.int().min(0).optional(),
  hostIndex: z.int().min(0).optional(),
  exitCode: z.int().nullable().optional(),
  signal: z.string().max(40).nullable().optional(),
  cancelled: z.boolean().optional(),
  result: z.unknown().optional(),
  resultRef: z.object({ agent: z.string(), jobId: z.string(), attempt: z.int(), bytes: z.int() }).optional(),
  error: SerializedErrorSchema.optional(),
  /** The GCE metadata endpoint said TRUE when the workload ended (a task error → preempted). */
  metadataPreempted: z.boolean().optional(),
  reason: z.string().max(2000).optional(),
});
export type HostEvent = z.infer<typeof HostEventSchema>;

/**
 * A preemption notice: a slice by name, or a host by address; an agent's `preempted` host event
 * is accepted as a notice too. `attempt`, when given, lets an old notice be recognised as stale;
 * so does `at` (when the preemption happened, ms since the epoch; by default when the notice was
 * published): a notice from before the job's current attempt started is about an earlier one.
 */
export const PreemptionNoticeSchema = z
  .object({
    slice: z.string().min(1).max(300).optional(),
    address: z.string().min(1).max(300).optional(),
    jobId: z.string().max(300).optional(),
    attempt: z.int().min(0).optional(),
    at: z.number().min(0).optional(),
    reason: z.string().max(2000).optional(),
  })
  .refine((n) => n.slice !== undefined || n.address !== undefined, {
    message: "a slice name or a host address",
  });
export type PreemptionNotice = z.infer<typeof PreemptionNoticeSchema>;
