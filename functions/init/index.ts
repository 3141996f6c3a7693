import type { Hono } from "hono";
import { z } from "zod";
import { initialRetryState } from "../../core/classification.js";
import { InvalidJobSpec } from "../../core/errors.js";
import { safeParseJobSpec } from "../../core/job-spec.js";
import { attemptStore } from "../attempts.js";
import type { ControlPlaneDeps } from "../deps.js";
import { attemptTimeoutSeconds, type ExecutionState, ExecutionStateSchema } from "../state.js";
import { createStepApp } from "../step-app.js";

/** Input of Init: the execution input and the context object's Execution / StateMachine. */
export const InitInputSchema = z.object({
  input: z.unknown(),
  execution: z.object({ Id: z.string(), Name: z.string() }).loose(),
  stateMachine: z.object({ Id: z.string() }).loose().optional(),
});

/** An execution input that continues a job from an earlier execution (history limit). */
export const ContinuationSchema = z.object({ gangwayContinuation: ExecutionStateSchema });

/**
 * Init: validate the job spec (or pick up a continued job) and build the execution's state.
 * The job id is the execution's name; a continued job keeps its id and counters.
 */
export function createInit(deps: Pick<ControlPlaneDeps, "store" | "clock">) {
  const attempts = attemptStore(deps.store);
  return async (input: z.output<typeof InitInputSchema>): Promise<ExecutionState> => {
    const continued = ContinuationSchema.safeParse(input.input);
    if (continued.success) {
      const prev = continued.data.gangwayContinuation;
      const state: ExecutionState = {
        job: prev.job,
        jobId: prev.jobId,
        executionArn: input.execution.Id,
        stateMachineArn: input.stateMachine?.Id ?? prev.stateMachineArn,
        retry: prev.retry,
        attempt: prev.retry.attempts,
        attemptTimeoutSeconds: attemptTimeoutSeconds(prev.job),
        history: {
          events: 0,
          execution: prev.history.execution + 1,
          firstExecutionArn: prev.history.firstExecutionArn,
        },
      };
      await attempts.setCurrent(state.jobId, {
        attempt: state.attempt,
        executionArn: input.execution.Id,
        state: "scaling",
        updatedAt: deps.clock.now(),
      });
      return state;
    }
    const spec = safeParseJobSpec(input.input);
    if (!spec.success) throw new InvalidJobSpec(spec.issues);
    const jobId = input.execution.Name;
    await attempts.setCurrent(jobId, {
      attempt: 0,
      executionArn: input.execution.Id,
      state: "scaling",
      updatedAt: deps.clock.now(),
    });
    return {
      job: spec.data,
      jobId,
      executionArn: input.execution.Id,
      stateMachineArn: input.stateMachine?.Id,
      retry: initialRetryState(),
      attempt: 0,
      attemptTimeoutSeconds: attemptTimeoutSeconds(spec.data),
      history: { events: 5, execution: 1, firstExecutionArn: input.execution.Id },
    };
  };
}

/** The Init step as a Hono app. */
export function createInitApp(deps: Pick<ControlPlaneDeps, "store" | "clock">): Hono {
  return createStepApp({ name: "init", input: InitInputSchema, handle: createInit(deps) });
}
