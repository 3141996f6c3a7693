import type { Hono } from "hono";
import { createAwaitAttemptApp } from "../../../functions/await-attempt/index.js";
import { createCheckResultsApp } from "../../../functions/check-results/index.js";
import { createCheckScaleUpApp } from "../../../functions/check-scale-up/index.js";
import { createContinueExecutionApp } from "../../../functions/continue-execution/index.js";
import type { ControlPlaneDeps } from "../../../functions/deps.js";
import { createInitApp } from "../../../functions/init/index.js";
import { createLaunchHostsApp } from "../../../functions/launch-hosts/index.js";
import { createPreparePlacementApp } from "../../../functions/prepare-placement/index.js";
import { createScaleSlicesApp } from "../../../functions/scale-slices/index.js";
import { createTeardownApp } from "../../../functions/teardown/index.js";
import type { STEP_NEEDS, StepName } from "../steps.js";

/** What step `S` is built with: exactly the deps {@link STEP_NEEDS} lists (and so the stack grants). */
export type StepDeps<S extends StepName> = Pick<ControlPlaneDeps, (typeof STEP_NEEDS)[S][number]> &
  Pick<ControlPlaneDeps, "log">;

/**
 * Each step's Hono app factory. Typed so that a factory wanting a dependency its entry in
 * STEP_NEEDS lacks does not compile: the IAM the stack grants cannot fall behind the code.
 */
export const STEP_APPS: { [S in StepName]: (deps: StepDeps<S>) => Hono } = {
  init: createInitApp,
  "scale-slices": createScaleSlicesApp,
  "prepare-placement": createPreparePlacementApp,
  "launch-hosts": createLaunchHostsApp,
  "await-attempt": createAwaitAttemptApp,
  "check-scale-up": createCheckScaleUpApp,
  "check-results": createCheckResultsApp,
  teardown: createTeardownApp,
  "continue-execution": createContinueExecutionApp,
};

/** The Hono app of step `step`, built with its deps. */
export function buildStepApp<S extends StepName>(step: S, deps: StepDeps<S>): Hono {
  return (STEP_APPS[step] as (d: StepDeps<S>) => Hono)(deps);
}
