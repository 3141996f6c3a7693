import type { Hono } from "hono";
import { z } from "zod";
import { attemptStore } from "../attempts.js";
import type { ControlPlaneDeps } from "../deps.js";
import { deliverOutcome } from "../resolution.js";
import { ExecutionStateSchema } from "../state.js";
import { createStepApp } from "../step-app.js";

/** Input of AwaitAttempt: the attempt's task token (`$$.Task.Token`) and the state. */
export const AwaitInputSchema = z.object({ token: z.string().min(1), state: ExecutionStateSchema });

/**
 * AwaitAttempt (the `.waitForTaskToken` state): record the attempt's one task token, where the
 * ingest of host events and preemption notices finds it, and return at once. If the outcome was
 * decided before the token existed (a workload that ends in milliseconds), send it now.
 */
export function createAwaitAttempt(deps: Pick<ControlPlaneDeps, "store" | "tokens">) {
  const attempts = attemptStore(deps.store);
  return async ({ token, state }: z.output<typeof AwaitInputSchema>) => {
    await attempts.setToken(state.jobId, state.attempt, token);
    const cancel = await attempts.cancelRequested(state.jobId);
    if (cancel) {
      await attempts.decide(state.jobId, state.attempt, {
        kind: "failed",
        at: cancel.at,
        error: { name: "JobCancelled", message: `job ${state.jobId} cancelled: ${cancel.reason}` },
      });
    }
    const delivered = await deliverOutcome(attempts, deps.tokens, state.jobId, state.attempt, { token });
    return { registered: true, delivered };
  };
}

/** The AwaitAttempt step as a Hono app. */
export function createAwaitAttemptApp(deps: Pick<ControlPlaneDeps, "store" | "tokens">): Hono {
  return createStepApp({ name: "await-attempt", input: AwaitInputSchema, handle: createAwaitAttempt(deps) });
}
