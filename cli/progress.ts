import type { HistoryEvent } from "@aws-sdk/client-sfn";
import { continuedAsIn } from "../functions/api/execution-chain.js";
import { failureOf } from "../functions/console/history.js";
import { EXECUTION_ENDS } from "./client/history-feed.js";

/** What the progress reader knows of a job, from its execution's history alone. */
export interface JobProgress {
  attempt: number;
  slices: string[];
  hosts: number;
  phase: "starting" | "scaling" | "placing" | "launching" | "running" | "checking" | "tearing-down" | "done";
  preemptions: number;
  failures: number;
  /**
   * Set when the execution just read ended by continuing the job in a new one (its ARN): the
   * phase is then "done" for that execution only; the job goes on there.
   */
  continuedAs?: string | undefined;
}

/** Whether `progress` shows the job itself ended, not just one execution that continued it. */
export function jobEnded(progress: JobProgress): boolean {
  return progress.phase === "done" && progress.continuedAs === undefined;
}

function parse(text: string | undefined): Record<string, unknown> | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function problemText(failed: { error?: string; cause?: string }): string {
  const f = failureOf({ taskFailedEventDetails: failed });
  return `${f?.error ?? "error"}${f?.message ? `: ${f.message}` : ""}`;
}

/**
 * Turns an execution's history into progress lines (attempt, slices, hosts, states). Feed it
 * events in order, as they come — a job's continued executions one after the other, too; it
 * remembers where each attempt stands. Only the history is read, so it works against the
 * embedded engine, LocalStack and AWS alike.
 */
export function createProgressReader() {
  const progress: JobProgress = {
    attempt: 0,
    slices: [],
    hosts: 0,
    phase: "starting",
    preemptions: 0,
    failures: 0,
  };
  let entered = "";
  let failedHere = false;
  const onEvent = (e: HistoryEvent): string[] => {
    const lines: string[] = [];
    const at = `attempt ${Math.max(progress.attempt, 1)}`;
    if (e.type === "ExecutionStarted") {
      // The job's first execution, or the one it continued in.
      progress.phase = "starting";
      progress.continuedAs = undefined;
    }
    if (e.stateEnteredEventDetails?.name) {
      entered = e.stateEnteredEventDetails.name;
      failedHere = false;
    }
    const exited = e.stateExitedEventDetails;
    if (exited?.name) {
      const out = parse(exited.output);
      switch (exited.name) {
        case "ScaleSlices": {
          const scale = out?.scale as
            | {
                status?: string;
                slices?: Array<{ name: string; hosts: unknown[] }>;
                wanted?: number[];
                available?: number;
              }
            | undefined;
          progress.attempt = Number(out?.attempt ?? progress.attempt);
          if (scale?.status === "ready" && scale.slices) {
            progress.slices = scale.slices.map((s) => s.name);
            progress.hosts = scale.slices.reduce((n, s) => n + s.hosts.length, 0);
            progress.phase = "placing";
            lines.push(
              `attempt ${progress.attempt}: leased ${progress.slices.join(", ")} (${progress.hosts} host${progress.hosts === 1 ? "" : "s"})`,
            );
          } else if (scale?.status === "pending") {
            progress.phase = "scaling";
            lines.push(
              `attempt ${progress.attempt}: waiting for slices (${scale.available ?? 0} of ${scale.wanted?.join(" or ")} available; autoscaler asked)`,
            );
          }
          break;
        }
        case "LaunchHosts":
          progress.phase = "running";
          lines.push(`attempt ${progress.attempt}: ${progress.hosts}/${progress.hosts} hosts running`);
          break;
        case "AwaitAttempt":
          if (!failedHere) lines.push(`attempt ${progress.attempt}: every host exited 0`);
          break;
        case "CheckScaleUp": {
          // AwaitAttempt's timeout came here: a look for more slices, or the attempt's own limit.
          const running = out?.running as { resume?: boolean; lastLook?: string } | undefined;
          const problem = out?.problem as { Error?: string; Cause?: string } | undefined;
          if (running?.resume) {
            if (running.lastLook)
              lines.push(`attempt ${progress.attempt}: looked for more slices: ${running.lastLook}`);
          } else if (problem?.Error === "States.Timeout")
            lines.push(
              `attempt ${progress.attempt}: AwaitAttempt: States.Timeout (the attempt ran past attemptSeconds)`,
            );
          else if (problem?.Error)
            lines.push(
              `attempt ${progress.attempt}: ${problemText({ error: problem.Error, cause: problem.Cause })}`,
            );
          break;
        }
        case "CheckResults": {
          const retry = out?.retry as { preemptions?: number; failures?: number } | undefined;
          const decision = out?.decision as { action?: string; reason?: string; status?: string } | undefined;
          progress.preemptions = retry?.preemptions ?? progress.preemptions;
          progress.failures = retry?.failures ?? progress.failures;
          progress.phase = "tearing-down";
          if (decision?.reason === "scaled" && decision.action === "retry") {
            lines.push(`attempt ${progress.attempt}: scaling up — all slices torn down, going again on more`);
          } else if (decision?.action === "retry" || decision?.action === "continue") {
            lines.push(
              `attempt ${progress.attempt}: ${decision.reason} — all slices torn down, going again (${progress.preemptions} preemption${progress.preemptions === 1 ? "" : "s"}, ${progress.failures} failure${progress.failures === 1 ? "" : "s"} so far)`,
            );
          }
          break;
        }
        case "Teardown":
          lines.push(`attempt ${progress.attempt}: torn down, no process of it left`);
          break;
      }
    }
    const failed = e.taskFailedEventDetails ?? e.lambdaFunctionFailedEventDetails;
    if (failed || e.taskTimedOutEventDetails) failedHere = true;
    if (failed && entered !== "Teardown") lines.push(`${at}: ${entered}: ${problemText(failed)}`);
    if (e.taskTimedOutEventDetails) {
      const error = e.taskTimedOutEventDetails.error;
      // A heartbeat missed: the hosts went silent. The task's own timeout is told by CheckScaleUp,
      // which says whether it was `attemptSeconds` running out or a look for more slices.
      if (error !== "States.Timeout") lines.push(`${at}: ${entered}: ${error} (no word from the hosts)`);
    }
    if (EXECUTION_ENDS.has(e.type ?? "")) {
      progress.phase = "done";
      const next =
        e.type === "ExecutionSucceeded" ? continuedAsIn(e.executionSucceededEventDetails?.output) : undefined;
      if (next !== undefined) {
        progress.continuedAs = next;
        lines.push(`continued in a new execution (history limit): ${next}`);
      }
    }
    return lines;
  };
  return { progress, onEvent };
}
