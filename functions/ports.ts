import type { ClusterSlice } from "../core/cluster-spec.js";
import type { RunParams } from "./clients/agent/client.js";
import type { Lease, RunInfo } from "./clients/agent/messages.js";

/**
 * What the step functions need from the world, as narrow interfaces. Handlers get them through
 * factories (dependency injection): the embedded stack passes in-process implementations, a
 * Lambda passes clients of real services, unit tests pass fakes.
 */

/** A lease on a host, as an agent reports it. */
export type AgentLease = Lease;

/** What the control plane reads of one run on a host (a subset of the agent's `RunInfo`, so fakes stay small). */
export type AgentRunInfo = Pick<
  RunInfo,
  | "jobId"
  | "attempt"
  | "epoch"
  | "sliceIndex"
  | "hostIndex"
  | "exited"
  | "exitCode"
  | "hasExitCode"
  | "signal"
  | "cancelled"
  | "resultBytes"
  | "resultJson"
  | "errorJson"
>;

/** A host's status, as an agent reports it. */
export interface AgentStatus {
  state: string;
  lease: AgentLease | null;
  run: AgentRunInfo | null;
  preempted: boolean;
}

/** The calls of a host agent the control plane makes (a structural subset of the agent client). */
export interface AgentPort {
  health(): Promise<{ ok: boolean; preempted: boolean; address: string }>;
  acquireLease(r: {
    leaseId: string;
    jobId: string;
    epoch: number;
    ttlMs: number;
  }): Promise<{ held: boolean }>;
  renewLease(r: { leaseId: string; epoch: number; ttlMs: number }): Promise<{ held: boolean }>;
  /**
   * Agents answer the host's status afterwards (`status`; without it the caller asks) and the
   * processes of the lease's last run that outlived SIGKILL (`leftoverPids`).
   */
  releaseLease(r: {
    leaseId: string;
    epoch: number;
    graceMs?: number;
  }): Promise<{ held: boolean; status?: AgentStatus | null; leftoverPids?: number[] }>;
  run(r: RunParams): Promise<{ started: boolean; alreadyRunning: boolean; errorJson: string }>;
  cancel(r: {
    leaseId: string;
    epoch: number;
    graceMs?: number;
  }): Promise<{ wasRunning: boolean; leftoverPids: number[]; status?: AgentStatus | null }>;
  status(): Promise<AgentStatus>;
  readResult(r?: { jobId?: string; attempt?: number }): Promise<{ present: boolean; resultJson: string }>;
  readOutput(
    maxBytes?: number,
    run?: { jobId: string; attempt?: number },
  ): Promise<{ stdout: Buffer; stderr: Buffer; stdoutTotal: number; stderrTotal: number }>;
}

/** Gives the agent at `host:port`; implementations pool connections. */
export interface AgentConnector {
  agent(address: string): AgentPort;
}

/** Where slices come from (the local provider, a static inventory, a cloud). */
export interface SliceProvider {
  /** Every slice that exists now, with each host's agent address. */
  listSlices(): Promise<ClusterSlice[]>;
  /**
   * Ask for `count` more slices of `type` (an autoscaler; may do nothing). ScaleSlices asks on
   * every poll for all it still lacks: what is already on its way must not be asked for again.
   */
  requestSlices(type: string, count: number): Promise<void>;
  /**
   * Optional: how much of `type` is on its way — slices for a TPU type, hosts for `cpu` /
   * `gpu-MODEL-N`. A provider that can say lets a restart wait for its largest slice count.
   */
  pendingSlices?(type: string): Promise<number>;
  /**
   * Give slices back: preempted ones are deleted (they hold quota until then). Each is named with
   * the hosts the attempt knew, so that a slice that has since been replaced under the same name
   * is left alone.
   */
  releaseSlices(slices: ClusterSlice[], reason: "preempted" | "unused"): Promise<void>;
}

/** Outcome of resolving a task token: `stale` when the task is gone (timed out, done, unknown). */
export type TokenOutcome = "sent" | "stale";

/** The task-token calls of Step Functions. */
export interface TaskTokens {
  succeed(token: string, output: unknown): Promise<TokenOutcome>;
  fail(token: string, error: string, cause: string): Promise<TokenOutcome>;
  heartbeat(token: string): Promise<TokenOutcome>;
}

/** Starting an execution (to continue a job in a new execution before the history limit). */
export interface ExecutionStarter {
  start(r: { stateMachineArn: string; name: string; input: string }): Promise<{ executionArn: string }>;
}

/** One execution as the API reports it. */
export interface ExecutionSummary {
  executionArn: string;
  name: string;
  status: string;
  startDate?: Date | undefined;
  stopDate?: Date | undefined;
}

/** One execution in full. */
export interface ExecutionDetail extends ExecutionSummary {
  input?: string | undefined;
  output?: string | undefined;
  error?: string | undefined;
  cause?: string | undefined;
}

/** What the API needs of Step Functions besides starting executions. */
export interface ExecutionsApi extends ExecutionStarter {
  describe(executionArn: string): Promise<ExecutionDetail | undefined>;
  list(r: {
    stateMachineArn: string;
    maxResults: number;
    nextToken?: string | undefined;
    status?: string | undefined;
  }): Promise<{
    executions: ExecutionSummary[];
    nextToken?: string | undefined;
  }>;
  /** Every history event of an execution, in order, as the SFN API returns them. */
  history(executionArn: string): Promise<unknown[]>;
}

/**
 * A small key-value store of text (a directory in the embedded stack, S3 on AWS). Keys are
 * `/`-separated paths. `create` writes only if the key is absent (first writer wins).
 */
export interface ResultsStore {
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
  create(key: string, value: string): Promise<boolean>;
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
}

/** Milliseconds since the epoch; injected so tests control time. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
