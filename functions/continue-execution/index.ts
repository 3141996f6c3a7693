import { createHash } from "node:crypto";
import type { Hono } from "hono";
import { InternalError } from "../../core/errors.js";
import { attemptStore } from "../attempts.js";
import type { ControlPlaneDeps } from "../deps.js";
import { type ExecutionState, ExecutionStateSchema } from "../state.js";
import { createStepApp } from "../step-app.js";

/**
 * Name of the n-th execution of a job: `<job>-c<n>`, within the 80-character limit. A job id too
 * long for that is cut and marked with a hash of the whole id, so two long ids that share their
 * first characters do not name the same continuation.
 */
export function continuationName(jobId: string, execution: number): string {
  const suffix = `-c${execution}`;
  if (jobId.length + suffix.length <= 80) return `${jobId}${suffix}`;
  const hash = createHash("sha256").update(jobId).digest("hex").slice(0, 8);
  // A surrogate pair cut in two is not a name Step Functions takes.
  const head = jobId.slice(0, 80 - suffix.length - 9).replace(/[\uD800-\uDBFF]$/, "");
  return `${head}-${hash}${suffix}`;
}

/**
 * ContinueExecution: before the 25,000-event history limit, start a new execution of the same
 * state machine that carries the job and its counters on, linked to this one; this execution
 * then ends with `{continuedAs}`. A job can so survive thousands of preemptions.
 */
export function createContinueExecution(deps: Pick<ControlPlaneDeps, "executions" | "store" | "clock">) {
  const attempts = attemptStore(deps.store);
  return async (state: ExecutionState): Promise<ExecutionState> => {
    if (!state.stateMachineArn)
      throw new InternalError("cannot continue: the state machine's ARN is unknown");
    const next = state.history.execution + 1;
    const carried: ExecutionState = {
      ...state,
      decision: undefined,
      final: undefined,
      scale: undefined,
      placement: undefined,
    };
    // Same name and input on a retry: Step Functions answers with the execution already started.
    const { executionArn } = await deps.executions.start({
      stateMachineArn: state.stateMachineArn,
      name: continuationName(state.jobId, next),
      input: JSON.stringify({ gangwayContinuation: carried }),
    });
    // This execution ends now; until the new one's Init, the API (status, cancel) finds the job
    // through its current record, which must name the execution that goes on. It is the record
    // that Init writes, and it is written only while it still names this execution: a retry
    // never moves back a record the new execution has taken further.
    const current = await attempts.current(state.jobId);
    if (!current || current.executionArn === state.executionArn) {
      await attempts.setCurrent(state.jobId, {
        attempt: state.retry.attempts,
        executionArn,
        state: "scaling",
        updatedAt: deps.clock.now(),
      });
    }
    const status = { continuedAs: executionArn, jobId: state.jobId, counters: state.retry };
    return { ...state, final: { status, error: "", cause: "" } };
  };
}

/** The ContinueExecution step as a Hono app. */
export function createContinueExecutionApp(
  deps: Pick<ControlPlaneDeps, "executions" | "store" | "clock">,
): Hono {
  return createStepApp({
    name: "continue-execution",
    input: ExecutionStateSchema,
    handle: createContinueExecution(deps),
  });
}
