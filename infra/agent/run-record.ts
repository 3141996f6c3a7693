import type { RunFiles } from "../../core/env-contract.js";
import type { SerializedError } from "../../core/serialized-error.js";
import type {
  PeerStatus,
  RunInfo,
  RunRequest,
  SliceStatusReply,
} from "../../functions/clients/agent/messages.js";
import type { HostEvent, HostEventKind } from "./events.js";
import type { PeerState, SliceMonitor } from "./slice-monitor.js";
import type { Workload } from "./workload.js";

/** Everything an agent knows about one run, from its request to how it ended. */
export interface RunRecord {
  req: RunRequest;
  files: RunFiles;
  workload: Workload | undefined;
  startedAt: number;
  endedAt: number;
  exited: boolean;
  exitCode: number | null;
  signal: string | null;
  cancelled: boolean;
  /** Set before a kill so the end is reported as such (`lost` on lease expiry). */
  endKind: HostEventKind;
  reason: string | undefined;
  resultJson: string | undefined;
  resultBytes: number;
  error: SerializedError | undefined;
  /** Resolves when the end was recorded (files read). */
  finished: Promise<void>;
  /** Set while gangway itself ends the run: its event waits until the host's state is updated. */
  holdEvent: boolean;
  /** On a slice head: its watch over the other hosts of the slice. */
  monitor: SliceMonitor | undefined;
  /** The metadata endpoint said TRUE when the workload failed (unset when not asked). */
  metadataPreempted: boolean | undefined;
  /** Processes of the run that outlived its last SIGKILL (normally none). */
  leftoverPids: number[];
  /** Its leader's exit was seen (the end is being recorded, `exited` follows). */
  leaderExited: boolean;
}

/** A fresh record for `req`, not started yet. */
export function newRunRecord(req: RunRequest, files: RunFiles, startedAt: number): RunRecord {
  return {
    req,
    files,
    workload: undefined,
    startedAt,
    endedAt: 0,
    exited: false,
    exitCode: null,
    signal: null,
    cancelled: false,
    endKind: "exited",
    reason: undefined,
    resultJson: undefined,
    resultBytes: 0,
    error: undefined,
    finished: Promise.resolve(),
    holdEvent: false,
    monitor: undefined,
    metadataPreempted: undefined,
    leftoverPids: [],
    leaderExited: false,
  };
}

/** Whether two requests ask for the same run (a retried Run gets the existing one back). */
export const sameRun = (a: RunRequest, b: RunRequest) =>
  a.epoch === b.epoch &&
  a.leaseId === b.leaseId &&
  a.jobId === b.jobId &&
  a.attempt === b.attempt &&
  a.sliceIndex === b.sliceIndex &&
  a.hostIndex === b.hostIndex;

/** The wire form of a run; the result inline only when it is at most `inlineBytes`. */
export function runInfo(run: RunRecord, inlineBytes: number): RunInfo {
  const inline = run.resultJson !== undefined && run.resultBytes <= inlineBytes;
  return {
    jobId: run.req.jobId,
    attempt: run.req.attempt,
    epoch: run.req.epoch,
    sliceIndex: run.req.sliceIndex,
    sliceName: run.req.sliceName,
    hostIndex: run.req.hostIndex,
    pid: run.workload?.pid ?? 0,
    startedAtMs: run.startedAt,
    endedAtMs: run.endedAt,
    exited: run.exited,
    exitCode: run.exitCode ?? 0,
    hasExitCode: run.exitCode !== null,
    signal: run.signal ?? "",
    cancelled: run.cancelled,
    resultBytes: run.resultBytes,
    resultJson: inline ? (run.resultJson ?? "") : "",
    errorJson: run.error ? JSON.stringify(run.error) : "",
  };
}

const runFields = (run: RunRecord) => ({
  leaseId: run.req.leaseId,
  jobId: run.req.jobId,
  attempt: run.req.attempt,
  epoch: run.req.epoch,
  sliceName: run.req.sliceName,
  sliceIndex: run.req.sliceIndex,
  hostIndex: run.req.hostIndex,
});

/** The event of a run's end: exit code or signal, the result (or a reference to it), the error. */
export function runEndEvent(base: HostEvent, run: RunRecord, inlineBytes: number): HostEvent {
  const event: HostEvent = {
    ...base,
    kind: run.endKind,
    ...runFields(run),
    exitCode: run.exitCode,
    signal: run.signal,
    cancelled: run.cancelled,
    reason: run.reason,
  };
  if (run.resultJson !== undefined) {
    if (run.resultBytes <= inlineBytes) event.result = JSON.parse(run.resultJson) as unknown;
    else {
      event.resultRef = {
        agent: base.agent,
        jobId: run.req.jobId,
        attempt: run.req.attempt,
        bytes: run.resultBytes,
      };
    }
  }
  if (run.error) event.error = run.error;
  if (run.metadataPreempted !== undefined) event.metadataPreempted = run.metadataPreempted;
  return event;
}

/** The `heartbeat` of a run that is still going. */
export function heartbeatEvent(base: HostEvent, run: RunRecord): HostEvent {
  return { ...base, kind: "heartbeat", ...runFields(run) };
}

/** The `lost` event a slice head publishes for a peer that stopped answering. */
export function peerLostEvent(base: HostEvent, run: RunRecord, peer: PeerState): HostEvent {
  return {
    ...base,
    kind: "lost",
    ...runFields(run),
    agent: peer.agent,
    address: peer.agent.replace(/:\d+$/, "").replace(/^\[|\]$/g, ""),
    hostIndex: peer.hostIndex,
    reason: `slice head ${base.agent} lost contact with host ${peer.hostIndex}: ${peer.error}`.slice(0, 2000),
  };
}

/** The slice's state as its head sees it: degraded if a host stopped answering, exited when all are done. */
export function sliceState(run: RunRecord, peers: readonly PeerStatus[]): SliceStatusReply["state"] {
  const peerDone = (p: PeerStatus) =>
    p.status?.run?.exited === true &&
    p.status.run.jobId === run.req.jobId &&
    p.status.run.attempt === run.req.attempt;
  if (peers.some((p) => !p.reachable)) return "degraded";
  if (run.exited && peers.every(peerDone)) return "exited";
  return "running";
}
