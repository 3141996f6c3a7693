/** Shapes shared by the engine's parts: executions, history events, checkpoints, journal records. */
import type { History } from "./history.js";

/** One history event, AWS's shape: `{timestamp, type, id, previousEventId, <kind>EventDetails}`. */
export interface HistoryEvent {
  timestamp: number;
  type: string;
  id: number;
  previousEventId: number;
  [details: string]: unknown;
}

/** The `inputDetails`/`outputDetails` of the events the engine records: shared, never changed. */
export const NOT_TRUNCATED: { readonly truncated: false } = Object.freeze({ truncated: false });

/**
 * A plain state event in AWS's shape: `kind` 0 is a state entered (its input), 1 a state exited
 * (its output). The journal and the columnar history both rebuild events through this.
 */
export function plainStateEvent(
  kind: number,
  timestamp: number,
  type: string,
  id: number,
  previousEventId: number,
  name: string,
  text: string,
): HistoryEvent {
  return kind === 0
    ? {
        timestamp,
        type,
        id,
        previousEventId,
        stateEnteredEventDetails: { name, input: text, inputDetails: NOT_TRUNCATED },
      }
    : {
        timestamp,
        type,
        id,
        previousEventId,
        stateExitedEventDetails: { name, output: text, outputDetails: NOT_TRUNCATED },
      };
}

/** Where a branch (the machine, a Parallel branch or a Map iteration) stands; persisted on every move. */
export interface BranchCheckpoint {
  /** The state the branch is in and that state's raw input. */
  state: string;
  input: unknown;
  /** Event id of the state's `…StateEntered`. */
  entered: number;
  /** Assign variables visible in the branch. */
  vars: Record<string, unknown>;
  /** Sub-step: "enter" (nothing done yet), "wait", "task", "retry", "children". */
  phase: "enter" | "wait" | "task" | "retry" | "children";
  /** Per-retrier attempt counts of the state. */
  retries?: number[];
  /** Deadline (ms since epoch) of a Wait or a retry back-off. */
  until?: number;
  /** Task: its token (`.waitForTaskToken`), whether the invocation returned, its deadlines. */
  token?: string;
  submitted?: boolean;
  timeoutAt?: number;
  heartbeatSeconds?: number;
  heartbeatAt?: number;
}

/** A finished child branch: its output, or its error. */
export interface BranchDone {
  output?: unknown;
  error?: string;
  cause?: string;
}

export type ExecutionStatus = "RUNNING" | "SUCCEEDED" | "FAILED" | "TIMED_OUT" | "ABORTED";

/** An execution as the engine keeps it (in memory, rebuilt from the journal on start). */
export interface ExecutionData {
  seq: number;
  executionArn: string;
  stateMachineArn: string;
  stateMachineName: string;
  name: string;
  roleArn: string;
  definition: string;
  input: string;
  startDate: number;
  status: ExecutionStatus;
  stopDate?: number;
  output?: string;
  error?: string;
  cause?: string;
  events: History;
  /** Running branches' checkpoints and finished children, by branch id. */
  branches: Map<string, BranchCheckpoint | { done: BranchDone }>;
  /** Last event id of each branch, for `previousEventId`. */
  lastEvent: Map<string, number>;
}

/** A state machine as stored. */
export interface StateMachineData {
  stateMachineArn: string;
  name: string;
  definition: string;
  roleArn: string;
  type: "STANDARD" | "EXPRESS";
  creationDate: number;
  updateDate?: number;
  revisionId: string;
}

/** Journal records (one JSON line each). */
export type JournalRecord =
  | { k: "sm"; sm: StateMachineData }
  | { k: "exec"; exec: SerializedExecution }
  | { k: "smdel"; arn: string }
  | {
      k: "start";
      x: number;
      /** Without `definition` when it is its state machine's at that point of the journal. */
      exec: Omit<ExecutionData, "events" | "branches" | "lastEvent" | "status" | "definition"> & {
        definition?: string;
      };
    }
  | { k: "ev"; x: number; b: string; e: HistoryEvent }
  /** Plain StateEntered/StateExited events of one branch, ids consecutive (see journal.ts). */
  | { k: "sr"; x: number; b: string; i: number; p: number; t: number; l: Array<string | number> }
  | {
      k: "evs";
      x: number;
      l: Array<[string, HistoryEvent] | [string, 0 | 1, number, string, number, number, string, string]>;
    }
  | { k: "cp"; x: number; b: string; c: BranchCheckpoint }
  | { k: "done"; x: number; b: string; d: BranchDone }
  | { k: "clear"; x: number; b: string }
  | {
      k: "end";
      x: number;
      status: ExecutionStatus;
      stopDate: number;
      output?: string;
      error?: string;
      cause?: string;
    };

/** An execution as written in a compacted journal (maps as arrays). */
export interface SerializedExecution extends Omit<ExecutionData, "events" | "branches" | "lastEvent"> {
  events: HistoryEvent[];
  branches: Array<[string, BranchCheckpoint | { done: BranchDone }]>;
  lastEvent: Array<[string, number]>;
}
