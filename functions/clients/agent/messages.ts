import { z } from "zod";
import {
  AGENT_RUN_LIMITS,
  agentHeartbeatMs,
  leaseTtlSeconds,
  MAX_CANCEL_GRACE_SECONDS,
  MAX_HEARTBEAT_SECONDS,
} from "../../../core/job-spec.js";
import { toValidationIssues } from "../../../core/validation.js";
import { InvalidAgentRequest } from "./errors.js";

// Hand-written types of the messages of agent.proto as @grpc/proto-loader presents them
// (camelCase fields, int64 as number, defaults filled in), and zod schemas of what requests must hold.

/** Answer of Health: is the agent serving, who and where it is, and whether its VM is preempted. */
export interface HealthReply {
  ok: boolean;
  agent: string;
  address: string;
  version: string;
  startedAtMs: number;
  preempted: boolean;
}

/** A lease as the agent holds it: which attempt of which job, until when. */
export interface Lease {
  leaseId: string;
  jobId: string;
  epoch: number;
  expiresAtMs: number;
}

/** Answer of the lease calls: the lease now held (none after a release). */
export interface LeaseReply {
  held: boolean;
  lease: Lease | null;
  /** ReleaseLease only: the host's status once released (its last run's end included). */
  status?: HostStatus | null;
  /** ReleaseLease only: processes of the lease's last run still alive after SIGKILL (normally none). */
  leftoverPids?: number[];
}

/** Answer of Run: whether the workload started, its pid and its result/error files. */
export interface RunReply {
  started: boolean;
  alreadyRunning: boolean;
  pid: number;
  startedAtMs: number;
  resultFile: string;
  errorFile: string;
  /** A serialized `WorkloadStartFailed` when `started` is false, else "". */
  errorJson: string;
}

/** The current run of a host: its identity, how it ended, its result (inline when small) and error. */
export interface RunInfo {
  jobId: string;
  attempt: number;
  epoch: number;
  sliceIndex: number;
  sliceName: string;
  hostIndex: number;
  pid: number;
  startedAtMs: number;
  endedAtMs: number;
  exited: boolean;
  exitCode: number;
  hasExitCode: boolean;
  signal: string;
  cancelled: boolean;
  resultBytes: number;
  resultJson: string;
  errorJson: string;
}

/** The host's state, as Status returns and Watch streams it. */
export type HostState = "idle" | "leased" | "running" | "exited" | "preempted";

/** The host as Status returns it and Watch streams it; `seq` rises on every change. */
export interface HostStatus {
  state: HostState;
  seq: number;
  agent: string;
  address: string;
  lease: Lease | null;
  run: RunInfo | null;
  preempted: boolean;
}

/** Answer of Cancel: whether something ran, pids that refused to die (normally none), the status. */
export interface CancelReply {
  wasRunning: boolean;
  leftoverPids: number[];
  status: HostStatus | null;
}

/** Bounded tails of the run's stdout and stderr, and how many bytes each carried in all. */
export interface OutputReply {
  stdout: Buffer;
  stderr: Buffer;
  stdoutTotal: number;
  stderrTotal: number;
}

/** One other host of a slice as its head sees it. */
export interface PeerStatus {
  agent: string;
  hostIndex: number;
  reachable: boolean;
  status: HostStatus | null;
  error: string;
}

/** The slice as its head sees it: `degraded` when a host stopped answering. */
export interface SliceStatusReply {
  state: "idle" | "running" | "exited" | "degraded";
  head: HostStatus | null;
  peers: PeerStatus[];
}

/** The whole result of a run (ReadResult). */
export interface ResultReply {
  present: boolean;
  resultJson: string;
  resultBytes: number;
}

const MAX_ID = 256;
// What any valid job asks of an agent must pass here: the limits follow from the job spec's.
const MAX_TTL_MS = leaseTtlSeconds(MAX_HEARTBEAT_SECONDS) * 1000;
const MAX_GRACE_MS = MAX_CANCEL_GRACE_SECONDS * 1000;
const MAX_HEARTBEAT_MS = agentHeartbeatMs(MAX_HEARTBEAT_SECONDS);
const id = z.string().min(1).max(MAX_ID);
const epoch = z.number().int().min(1);
const grace = z.number().int().min(0).max(MAX_GRACE_MS);
const MIN_TTL_MS = 100;
const ttl = z.number().int().min(MIN_TTL_MS).max(MAX_TTL_MS);

/** What AcquireLease must hold: ids, an epoch ≥ 1, a TTL of 100 ms to what the longest heartbeat needs (3 days). */
export const AcquireLeaseSchema = z.object({
  leaseId: id,
  jobId: id,
  epoch,
  ttlMs: ttl,
});
/** A parsed AcquireLease request. */
export type AcquireLeaseRequest = z.infer<typeof AcquireLeaseSchema>;

/** What RenewLease must hold. */
export const RenewLeaseSchema = z.object({
  leaseId: id,
  epoch,
  ttlMs: ttl,
});
/** A parsed RenewLease request. */
export type RenewLeaseRequest = z.infer<typeof RenewLeaseSchema>;

/** What ReleaseLease must hold. */
export const ReleaseLeaseSchema = z.object({ leaseId: id, epoch, graceMs: grace });
/** A parsed ReleaseLease request. */
export type ReleaseLeaseRequest = z.infer<typeof ReleaseLeaseSchema>;

/** What Cancel must hold (grace at most 10 minutes). */
export const CancelSchema = z.object({ leaseId: id, epoch, graceMs: grace });
/** A parsed Cancel request. */
export type CancelRequest = z.infer<typeof CancelSchema>;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// One schema per value (not a pipe of two): a Run carries dozens of them, hundreds of Runs at once.
const noNul = (what: string, max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => !s.includes("\0"), { message: `${what} without NUL characters` });

/** What Run must hold: argv (no NUL, argv[0] non-empty), env names and values, cwd, peers, periods. */
export const RunSchema = z.object({
  leaseId: id,
  epoch,
  jobId: id,
  attempt: z.number().int().min(1),
  sliceIndex: z.number().int().min(0),
  sliceName: z.string().max(MAX_ID),
  hostIndex: z.number().int().min(0),
  argv: z
    .array(noNul("an argument", AGENT_RUN_LIMITS.stringChars))
    .min(1)
    .max(AGENT_RUN_LIMITS.args)
    .refine((a) => (a[0] ?? "").length > 0, { message: "a non-empty program name as argv[0]" }),
  env: z
    .record(
      z.string().regex(ENV_NAME, "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
      noNul("a value", AGENT_RUN_LIMITS.stringChars),
    )
    .refine((e) => Object.keys(e).length <= AGENT_RUN_LIMITS.envEntries, {
      message: `at most ${AGENT_RUN_LIMITS.envEntries} variables`,
    }),
  cwd: noNul("a directory", AGENT_RUN_LIMITS.cwdChars),
  graceMs: grace,
  /** Slice head only: the agents of hosts 1..n-1, in host order. */
  slicePeers: z
    .array(z.string().regex(/^[^\s/]+:\d{1,5}$/, "host:port"))
    .max(4096)
    .default([]),
  /** Period of heartbeat events; 0: the agent's default. */
  heartbeatMs: z
    .number()
    .int()
    .refine((n) => n === 0 || (n >= 10 && n <= MAX_HEARTBEAT_MS), {
      message: `0 or 10 to ${MAX_HEARTBEAT_MS} (milliseconds)`,
    })
    .default(0),
  /** Non-zero: take over this job's lease of an older epoch for this run (an in-place restart). */
  takeOverTtlMs: z
    .number()
    .int()
    .refine((n) => n === 0 || (n >= MIN_TTL_MS && n <= MAX_TTL_MS), {
      message: `0 or ${MIN_TTL_MS} to ${MAX_TTL_MS} (milliseconds)`,
    })
    .default(0),
});
/** A parsed Run request. */
export type RunRequest = z.infer<typeof RunSchema>;

/** What ReadOutput must hold (empty job id: the current run, whoever's it is). */
export const ReadOutputSchema = z.object({
  maxBytes: z.number().int().min(0),
  jobId: z.string().max(MAX_ID).default(""),
  attempt: z.number().int().min(0).default(0),
});
/** What ReadResult must hold (empty job id / attempt 0: the latest run). */
export const ReadResultSchema = z.object({ jobId: z.string().max(MAX_ID), attempt: z.number().int().min(0) });

/**
 * Parse a request with `schema`; throws {@link InvalidAgentRequest} listing every problem as
 * `path: expected …, got …`.
 */
export function parseRequest<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const parsed = schema.safeParse(input, { reportInput: true });
  if (parsed.success) return parsed.data;
  const issues = toValidationIssues(parsed.error.issues);
  throw new InvalidAgentRequest(`invalid ${what}: ${issues.map((i) => i.message).join("; ")}`, {
    issues: issues.map((i) => i.message),
  });
}
