import { z } from "zod";
import { SerializedErrorSchema } from "./serialized-error.js";

/** Final statuses of a job, as the ancestors name them (JobSucceeded, JobFailed …). */
export const JOB_STATUSES = ["SUCCEEDED", "FAILED", "PREEMPTED", "ERROR", "CANCELLED"] as const;
export type JobStatusName = (typeof JOB_STATUSES)[number];

/** Metadata of a job: the ancestors' JobInfo (name, state, kind) plus gangway's ids. */
export const JobInfoSchema = z.object({
  name: z.string(),
  jobId: z.string(),
  /** `pending`, `running`, `succeeded`, `failed`, `preempted`, `error`, `cancelled`. */
  state: z.string(),
  /** Accelerator kind: `tpu`, `gpu` or `cpu`. */
  kind: z.enum(["tpu", "gpu", "cpu"]),
  executionArn: z.string().optional(),
});
export type JobInfo = z.infer<typeof JobInfoSchema>;

/** The ancestors' HostInfo, with where the host is and how its run ended. */
export const HostInfoSchema = z.object({
  sliceIndex: z.int().min(0),
  sliceName: z.string(),
  hostIndex: z.int().min(0),
  address: z.string(),
  numDevices: z.int().min(0).nullable(),
  healthy: z.boolean(),
  failed: z.boolean(),
  /** `idle`, `leased`, `running`, `exited`, `preempted`, `lost`, `cancelled`. */
  state: z.string().optional(),
  exitCode: z.int().nullable().optional(),
  signal: z.string().nullable().optional(),
});
export type HostInfo = z.infer<typeof HostInfoSchema>;

/** The ancestors' SliceInfo: a slice's name, size, head address and accelerators per host. */
export const SliceInfoSchema = z.object({
  sliceName: z.string(),
  sliceIndex: z.int().min(0),
  type: z.string(),
  numHosts: z.int().min(1),
  /** Address of the slice head (worker 0). */
  ipAddress: z.string(),
  numAcceleratorsPerHost: z.int().min(0),
  hosts: z.array(HostInfoSchema).optional(),
});
export type SliceInfo = z.infer<typeof SliceInfoSchema>;

/** The ancestors' MultisliceInfo: coordinator, this slice's id, slice count, port (8081). */
export const MultisliceInfoSchema = z.object({
  coordinatorIp: z.string(),
  sliceId: z.int().min(0),
  numSlices: z.int().min(1),
  port: z.int().min(1).max(65_535),
});
export type MultisliceInfo = z.infer<typeof MultisliceInfoSchema>;

/** How many attempts ran and what each counter holds. */
export const AttemptCountersSchema = z.object({
  attempts: z.int().min(0),
  preemptions: z.int().min(0),
  failures: z.int().min(0),
  /** Attempts ended to restart on more slices (no counter of the budgets); absent when none. */
  scaledUp: z.int().min(1).optional(),
});
export type AttemptCounters = z.infer<typeof AttemptCountersSchema>;

const common = {
  info: JobInfoSchema,
  counters: AttemptCountersSchema,
  hosts: z.array(HostInfoSchema).optional(),
};

/** The final status of a job: one of the ancestors' five outcomes. */
export const JobStatusSchema = z.discriminatedUnion("status", [
  z.object({ status: z.literal("SUCCEEDED"), ...common, result: z.unknown() }),
  z.object({ status: z.literal("FAILED"), ...common, error: SerializedErrorSchema }),
  z.object({ status: z.literal("PREEMPTED"), ...common, error: SerializedErrorSchema }),
  z.object({ status: z.literal("ERROR"), ...common, error: SerializedErrorSchema }),
  z.object({ status: z.literal("CANCELLED"), ...common, error: SerializedErrorSchema.optional() }),
]);
export type JobStatus = z.infer<typeof JobStatusSchema>;
