import { expect } from "vitest";
import type { HostEvent } from "../../../core/host-event.js";
import type { SerializedError } from "../../../core/serialized-error.js";
import { createAwaitAttempt } from "../../../functions/await-attempt/index.js";
import { createCheckResults } from "../../../functions/check-results/index.js";
import { createContinueExecution } from "../../../functions/continue-execution/index.js";
import { createIngest } from "../../../functions/ingest/events.js";
import { createInit } from "../../../functions/init/index.js";
import { createLaunchHosts } from "../../../functions/launch-hosts/index.js";
import { createPreparePlacement } from "../../../functions/prepare-placement/index.js";
import { createScaleSlices } from "../../../functions/scale-slices/index.js";
import type { ExecutionState } from "../../../functions/state.js";
import { createTeardown } from "../../../functions/teardown/index.js";
import type { fakeWorld } from "./fakes.js";

/** Every step of the control plane over one fake world, and ways to drive an attempt. */
export const execution = {
  Id: "arn:aws:states:us-east-1:000000000000:execution:gangway-multislice:train-1",
  Name: "train-1",
};
export const spec = (overrides: Record<string, unknown> = {}) => ({
  name: "train",
  accelerator: { kind: "tpu", type: "v4-16", slices: 2 },
  workload: { command: ["python3", "train.py"] },
  retry: { maxPreemptions: 2, maxFailures: 1 },
  ...overrides,
});

export function steps(world: ReturnType<typeof fakeWorld>) {
  const d = world.deps;
  return {
    init: createInit(d),
    scale: createScaleSlices(d),
    prepare: createPreparePlacement(d),
    launch: createLaunchHosts(d),
    await: createAwaitAttempt(d),
    check: createCheckResults(d),
    teardown: createTeardown(d),
    ingest: createIngest(d),
    continue: createContinueExecution(d),
  };
}

export async function launched(world: ReturnType<typeof fakeWorld>, overrides: Record<string, unknown> = {}) {
  const s = steps(world);
  let state = await s.init({ input: spec(overrides), execution, stateMachine: { Id: "arn:sm" } });
  state = await s.scale(state);
  state = await s.prepare(state);
  state = await s.launch(state);
  return { s, state };
}

/** Run a job to its continuation: a preemption past the history budget, CheckResults, Teardown. */
export async function continued(world: ReturnType<typeof fakeWorld>) {
  const { s, state } = await launched(world);
  const checked = await s.check({
    ...state,
    history: { ...state.history, events: 19_990 },
    problem: { Error: "Preempted", Cause: "" },
  });
  expect(checked.decision?.action).toBe("continue");
  const tornDown = await s.teardown(checked);
  return { s, tornDown };
}

export const exitEvent = (
  state: ExecutionState,
  slice: number,
  host: number,
  extra: Partial<HostEvent> = {},
): HostEvent => ({
  version: 1,
  kind: "exited",
  eventId: `e-${state.attempt}-${slice}-${host}-${extra.exitCode ?? 0}`,
  at: 1,
  agent: "x",
  address: state.placement?.slices[slice]?.hosts[host]?.address ?? "",
  jobId: state.jobId,
  attempt: state.attempt,
  epoch: state.attempt,
  sliceIndex: slice,
  hostIndex: host,
  exitCode: 0,
  signal: null,
  cancelled: false,
  result: { slice, host },
  ...extra,
});

/** A workload's error file of ~200 KB (a message and a stack of ~100 KB each, a cause, details): every error a state keeps at its largest. */
export const hugeWorkloadError: SerializedError = {
  name: "ValueError",
  message: `loss went NaN at step 1234: ${"m".repeat(100_000)}`,
  stack: `ValueError: loss went NaN\n${"  at train_step (train.py:88)\n".repeat(3_000)}`,
  details: { step: 1234, tensor: "t".repeat(5_000) },
  cause: { name: "FloatingPointError", message: "f".repeat(5_000) },
};
