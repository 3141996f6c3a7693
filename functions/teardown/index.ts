import type { Hono } from "hono";
import type { ClusterHost } from "../../core/cluster-spec.js";
import { GangwayError } from "../../core/errors.js";
import { attemptStore, caughtToError } from "../attempts.js";
import { type ControlPlaneDeps, FAN_OUT, HISTORY_COST, mapLimit } from "../deps.js";
import { type ExecutionState, ExecutionStateSchema, leaseIdOf } from "../state.js";
import { createStepApp } from "../step-app.js";

/** A process of the attempt is still alive after teardown; the state machine retries teardown. */
export class TeardownIncomplete extends GangwayError {
  override readonly name = "TeardownIncomplete";
}

/**
 * Teardown: on every host of the attempt, cancel the workload (SIGTERM, the job's grace, SIGKILL
 * of the whole process group) and release the lease; the next attempt starts only once no
 * process of this one is alive, so no leftover can join it. Unreachable hosts free themselves
 * when their lease expires (and their commands carry a stale epoch from now on); slices that
 * were preempted or unreachable go back to the provider, which deletes them.
 */
export function createTeardown(deps: Pick<ControlPlaneDeps, "agents" | "store" | "provider" | "clock">) {
  const attempts = attemptStore(deps.store);
  return async (state: ExecutionState): Promise<ExecutionState> => {
    const leaseId = leaseIdOf(state.jobId, state.attempt);
    const epoch = state.attempt;
    const graceMs = state.job.timeouts.cancelGraceSeconds * 1000;
    const slices = state.scale?.slices ?? [];
    const hosts: Array<ClusterHost & { slice: string }> = slices.flatMap((s) =>
      s.hosts.map((h) => ({ ...h, slice: s.name })),
    );
    const outcomes =
      epoch < 1
        ? []
        : await mapLimit(hosts, FAN_OUT, async (h) => {
            if (!h.agent) return { slice: h.slice, reachable: false, alive: false };
            const agent = deps.agents.agent(h.agent);
            try {
              const released = await agent.releaseLease({ leaseId, epoch, graceMs });
              const status = released.status ?? (await agent.status());
              const ours = status.run && status.run.jobId === state.jobId && status.run.attempt === epoch;
              return {
                slice: h.slice,
                reachable: true,
                alive: Boolean(ours && !status.run?.exited),
                preempted: status.preempted,
              };
            } catch {
              return { slice: h.slice, reachable: false, alive: false };
            }
          });
    const alive = outcomes.filter((o) => o.alive);
    if (alive.length > 0) {
      throw new TeardownIncomplete(
        `${alive.length} workload process group(s) of attempt ${epoch} still alive`,
        {
          slices: [...new Set(alive.map((o) => o.slice))],
        },
      );
    }
    const ends = state.placement ? await attempts.hostEnds(state.jobId, epoch) : new Map();
    const preempted = new Set(
      outcomes.filter((o) => !o.reachable || ("preempted" in o && o.preempted)).map((o) => o.slice),
    );
    const record = state.placement ? await attempts.record(state.jobId, epoch) : undefined;
    for (const h of record?.hosts ?? []) {
      const end = ends.get(`${h.sliceIndex}-${h.hostIndex}`);
      if (end?.kind === "preempted" || end?.kind === "lost") preempted.add(h.sliceName);
    }
    // A preemption notice names its slice in the error's details.
    const noticed =
      state.problem?.Error === "Preempted" ? caughtToError(state.problem).details?.slice : undefined;
    if (typeof noticed === "string") preempted.add(noticed);
    if (preempted.size > 0) {
      await deps.provider.releaseSlices(
        slices.filter((s) => preempted.has(s.name)),
        "preempted",
      );
    }
    const stopping = state.decision?.action !== "retry";
    await attempts.setCurrent(state.jobId, {
      attempt: epoch,
      executionArn: state.executionArn,
      state: stopping ? "done" : "scaling",
      updatedAt: deps.clock.now(),
    });
    return {
      ...state,
      scale: undefined,
      placement: undefined,
      problem: undefined,
      completion: undefined,
      history: { ...state.history, events: state.history.events + HISTORY_COST.task },
    };
  };
}

/** The Teardown step as a Hono app. */
export function createTeardownApp(
  deps: Pick<ControlPlaneDeps, "agents" | "store" | "provider" | "clock">,
): Hono {
  return createStepApp({ name: "teardown", input: ExecutionStateSchema, handle: createTeardown(deps) });
}
