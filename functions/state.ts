import { z } from "zod";
import { type JobSpec, JobSpecSchema } from "../core/job-spec.js";
import type { JobInfo } from "../core/job-status.js";
import { SerializedErrorSchema } from "../core/serialized-error.js";

/**
 * The execution's state: what every step function receives and returns (DESIGN.md: all state
 * lives in the execution, the agents and the results store; nothing in a function's memory).
 * It stays far below the 256 KiB state limit: placement is compact (environments are recomputed
 * from it), results and per-host detail go to the results store.
 */

const ClusterHostSchema = z.object({
  address: z.string(),
  workerId: z.int().min(0),
  agent: z.string().optional(),
});

export const ClusterSliceSchema = z.object({
  name: z.string(),
  kind: z.enum(["tpu", "gpu", "cpu"]),
  type: z.string(),
  hosts: z.array(ClusterHostSchema),
  gpuType: z.string().optional(),
  gpusPerHost: z.int().optional(),
  zone: z.string().optional(),
});

export const PlacementSchema = z.object({
  kind: z.enum(["tpu", "gpu", "cpu"]),
  type: z.string(),
  coordinatorIp: z.string(),
  coordinatorPort: z.int(),
  slices: z.array(
    z.object({
      index: z.int().min(0),
      name: z.string(),
      type: z.string(),
      zone: z.string().optional(),
      hosts: z.array(z.object({ index: z.int().min(0), address: z.string(), agent: z.string().optional() })),
    }),
  ),
});

export const RetryStateSchema = z.object({
  attempts: z.int().min(0),
  preemptions: z.int().min(0),
  failures: z.int().min(0),
  abandoned: z.int().min(0),
  /** Absent in states written before it (a running execution's must still parse): 0. */
  abandonedInARow: z.int().min(0).optional(),
  scaledUp: z.int().min(0).optional(),
  firstFailure: z.object({ error: SerializedErrorSchema, kind: z.enum(["failed", "error"]) }).optional(),
  lastPreemption: SerializedErrorSchema.optional(),
});

/** What a Catch adds: Step Functions' error name and cause text. */
export const CaughtErrorSchema = z.object({ Error: z.string(), Cause: z.string().optional() });

/**
 * Units (a TPU slice by name; a GPU/CPU host by address) whose leases a teardown kept for an
 * in-place restart: their hosts still hold this job's lease of `epoch`, their workloads gone.
 */
export const KeptLeasesSchema = z.object({ epoch: z.int().min(1), units: z.array(z.string()) });
export type KeptLeases = z.infer<typeof KeptLeasesSchema>;

export const ExecutionStateSchema = z.object({
  job: JobSpecSchema,
  jobId: z.string().min(1).max(80),
  executionArn: z.string().optional(),
  stateMachineArn: z.string().optional(),
  retry: RetryStateSchema,
  /** The attempt in progress (1-based); also the epoch every agent command carries. */
  attempt: z.int().min(0),
  /**
   * The job's `attemptSeconds`, or Step Functions' own default (none): AwaitAttempt's timeout in
   * definitions before CheckScaleUp (executions started under one still read it).
   */
  attemptTimeoutSeconds: z.int().min(1).optional(),
  /** AwaitAttempt's timeout this time: until the attempt's limit or its next look for more slices. */
  awaitTimeoutSeconds: z.int().min(1).optional(),
  /** Rough count of history events in this execution, to continue as a new one before 25,000. */
  history: z.object({
    events: z.int().min(0),
    execution: z.int().min(1),
    firstExecutionArn: z.string().optional(),
  }),
  scale: z
    .object({
      status: z.enum(["pending", "ready"]),
      startedAt: z.number(),
      deadline: z.number(),
      polls: z.int().min(0),
      waitSeconds: z.int().min(0),
      slices: z.array(ClusterSliceSchema).optional(),
      wanted: z.array(z.int()).optional(),
      available: z.int().optional(),
      /** Units of `slices` still under an older lease of this job: Run takes it over. */
      kept: KeptLeasesSchema.optional(),
    })
    .optional(),
  /** Set by a teardown that keeps healthy units' leases for the next attempt. */
  kept: KeptLeasesSchema.optional(),
  /** Units a scale-up leased for the next attempt (under its lease, `epoch`): ScaleSlices takes them first. */
  grown: KeptLeasesSchema.optional(),
  /**
   * The attempt's clock, set by LaunchHosts: when it started, when CheckScaleUp next looks for
   * more slices (absent: never), and whether CheckScaleUp sends the machine back to AwaitAttempt.
   */
  running: z
    .object({
      launchedAt: z.number(),
      scaleUpAt: z.number().optional(),
      checks: z.int().min(0),
      resume: z.boolean(),
      /** What CheckScaleUp's last look found, when it sent the machine back to wait. */
      lastLook: z.string().optional(),
    })
    .optional(),
  placement: PlacementSchema.optional(),
  problem: CaughtErrorSchema.optional(),
  /** A fault of gangway's own that a Catch recorded on the way to the Faulted state. */
  fault: CaughtErrorSchema.optional(),
  completion: z.unknown().optional(),
  decision: z
    .object({
      action: z.enum(["retry", "stop", "continue"]),
      status: z.enum(["SUCCEEDED", "FAILED", "PREEMPTED", "ERROR", "CANCELLED"]).optional(),
      reason: z.string().optional(),
      waitSeconds: z.int().min(0),
    })
    .optional(),
  final: z
    .object({
      status: z.unknown(),
      error: z.string(),
      cause: z.string(),
    })
    .optional(),
});

/** The execution state as every step reads and writes it. */
export type ExecutionState = z.infer<typeof ExecutionStateSchema>;
export type CaughtError = z.infer<typeof CaughtErrorSchema>;

/** The lease id every agent command of an attempt carries. */
export const leaseIdOf = (jobId: string, attempt: number) => `${jobId}#${attempt}`;

/** The key of the unit a host belongs to, as {@link KeptLeases} names it. */
export const unitKeyOf = (kind: "tpu" | "gpu" | "cpu", slice: string, address: string) =>
  kind === "tpu" ? slice : address;

/** Step Functions' default (and largest) task timeout: what "no limit" is for AwaitAttempt. */
export const NO_TASK_TIMEOUT_SECONDS = 99_999_999;

/**
 * The timeout AwaitAttempt reads (`TimeoutSecondsPath`) for `job`: always longer than its
 * heartbeat, as Step Functions requires (a job submitted before that was checked included).
 */
export const attemptTimeoutSeconds = (job: JobSpec): number =>
  Math.max(job.timeouts.attemptSeconds ?? NO_TASK_TIMEOUT_SECONDS, job.timeouts.heartbeatSeconds + 1);

/**
 * AwaitAttempt's timeout from `now`: until the attempt's own limit or the next scale-up check,
 * whichever comes first; never as short as the heartbeat (Step Functions refuses that), so a
 * limit closer than that is overrun by up to a heartbeat.
 */
export function awaitTimeoutSeconds(
  job: JobSpec,
  running: { launchedAt: number; scaleUpAt?: number | undefined },
  now: number,
): number {
  const limit = job.timeouts.attemptSeconds;
  const ends = [
    ...(limit === undefined ? [] : [running.launchedAt + limit * 1000]),
    ...(running.scaleUpAt === undefined ? [] : [running.scaleUpAt]),
  ];
  if (ends.length === 0) return attemptTimeoutSeconds(job);
  const seconds = Math.ceil((Math.min(...ends) - now) / 1000);
  return Math.min(NO_TASK_TIMEOUT_SECONDS, Math.max(seconds, job.timeouts.heartbeatSeconds + 1));
}

/** The JobStatus `info` of the job `state` runs, in `jobState` (`failed`, `cancelled` …). */
export const jobInfo = (state: ExecutionState, jobState: string): JobInfo => ({
  name: state.job.name,
  jobId: state.jobId,
  state: jobState,
  kind: state.job.accelerator.kind,
  executionArn: state.history.firstExecutionArn ?? state.executionArn,
});
