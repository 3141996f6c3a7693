import type { Hono } from "hono";
import { InternalError, Preempted, SliceUnhealthy } from "../../core/errors.js";
import { placeJob } from "../../core/placement.js";
import { serializeError } from "../../core/serialized-error.js";
import { type AttemptHost, attemptStore, noticeUnit } from "../attempts.js";
import { stopIfCancelled } from "../cancellation.js";
import { type ControlPlaneDeps, FAN_OUT, HISTORY_COST, mapLimit } from "../deps.js";
import { leaseTtlMs, releaseHeld } from "../scale-slices/index.js";
import { type ExecutionState, ExecutionStateSchema, leaseIdOf, unitKeyOf } from "../state.js";
import { createStepApp } from "../step-app.js";

/**
 * PreparePlacement: check that every host of every leased slice is present, healthy and still
 * leased to this attempt; place one worker per host with slice 0's head as coordinator; record
 * the attempt (its hosts, and the routes notices take to it). A host that is not fit makes the
 * slice unhealthy: the attempt is abandoned before it runs and retried without raising a counter.
 */
/**
 * How long a preemption notice that came between attempts is heeded: a VM goes within about 30 s
 * of its notice, so an older note is about a slice name used again (an inventory's host back).
 */
const NOTICE_HEED_MS = 10 * 60_000;

export function createPreparePlacement(deps: Pick<ControlPlaneDeps, "agents" | "store" | "clock">) {
  const attempts = attemptStore(deps.store);

  /**
   * Give back the leases of the slices that made placement fail. Their hosts answered well, so
   * the teardown would keep them for an in-place restart and the next attempt would take the
   * same broken units first, abandoned again each time; once freed, the teardown keeps none of them.
   */
  async function releaseOffenders(e: SliceUnhealthy, state: ExecutionState): Promise<void> {
    const names = new Set(Array.isArray(e.details.slices) ? e.details.slices : []);
    const kind = state.job.accelerator.kind;
    const keptBefore = state.scale?.kept;
    const keptUnits = new Set(keptBefore?.units ?? []);
    const hosts = (state.scale?.slices ?? [])
      .filter((s) => names.has(s.name))
      .flatMap((s) =>
        s.hosts.map((h) => ({ host: h, kept: keptUnits.has(unitKeyOf(kind, s.name, h.address)) })),
      );
    const under = (epoch: number) => ({ leaseId: leaseIdOf(state.jobId, epoch), epoch });
    await releaseHeld(deps.agents, hosts, under(state.attempt), keptBefore && under(keptBefore.epoch));
  }

  return async (state: ExecutionState): Promise<ExecutionState> => {
    await stopIfCancelled(attempts, state.jobId);
    const slices = state.scale?.slices;
    if (!slices || state.scale?.status !== "ready")
      throw new InternalError("PreparePlacement before ScaleSlices was ready");
    const leaseId = leaseIdOf(state.jobId, state.attempt);
    // Kept units were checked by the teardown a moment ago (alive, not preempted, still leased to
    // this job, under the older epoch the Run takes over): only newly leased hosts are asked.
    const kept = new Set(state.scale.kept?.units ?? []);
    const kind = state.job.accelerator.kind;
    const hosts = slices.flatMap((s) =>
      s.hosts
        .filter((h) => !kept.has(unitKeyOf(kind, s.name, h.address)))
        .map((h) => ({ slice: s.name, ...h })),
    );
    // A notice that came between attempts reached no running attempt (ingest noted it): a slice
    // it names, kept for an in-place restart or leased anew, is not launched on. The attempt ends
    // as preempted before it starts, and its teardown gives the slice back.
    const [noticed] = await attempts.noticed(
      state.jobId,
      slices.flatMap(noticeUnit.all),
      deps.clock.now() - NOTICE_HEED_MS,
    );
    if (noticed !== undefined) {
      const slice = slices.find((s) => noticeUnit.all(s).includes(noticed))?.name ?? null;
      throw new Preempted(`${noticed} was preempted before attempt ${state.attempt} started`, { slice });
    }
    const problems = (
      await mapLimit(hosts, FAN_OUT, async (h) => {
        if (!h.agent) return `${h.slice}#${h.workerId}: no agent address`;
        try {
          const agent = deps.agents.agent(h.agent);
          // One call says all: the agent answers (alive), its host's preemption state, its lease.
          const status = await agent.status();
          if (status.preempted) return `${h.slice}#${h.workerId}: host is being preempted`;
          if (status.lease?.leaseId !== leaseId || status.lease.epoch !== state.attempt) {
            return `${h.slice}#${h.workerId}: lease ${leaseId} no longer held`;
          }
          return undefined;
        } catch (e) {
          return `${h.slice}#${h.workerId}: ${serializeError(e).message}`;
        }
      })
    ).filter((p): p is string => p !== undefined);
    if (problems.length > 0) {
      throw new SliceUnhealthy(
        `${problems.length} host${problems.length === 1 ? "" : "s"} not fit: ${problems.slice(0, 5).join("; ")}`,
        {
          problems: problems.slice(0, 20),
        },
      );
    }
    let placement: ReturnType<typeof placeJob>;
    try {
      placement = placeJob(state.job, slices);
    } catch (e) {
      if (e instanceof SliceUnhealthy) await releaseOffenders(e, state);
      throw e;
    }
    const recordHosts: AttemptHost[] = placement.slices.flatMap((s) =>
      s.hosts.map((h) => ({
        sliceIndex: s.index,
        sliceName: s.name,
        hostIndex: h.index,
        address: h.address,
        agent: h.agent ?? "",
      })),
    );
    // Kept units were this job's without a break: their routes already lead here.
    await attempts.writeRecord(
      {
        jobId: state.jobId,
        attempt: state.attempt,
        leaseId,
        hosts: recordHosts,
        startedAt: deps.clock.now(),
        heartbeatMs: state.job.timeouts.heartbeatSeconds * 1000,
        leaseTtlMs: leaseTtlMs(state.job),
      },
      kind === "tpu" ? { slices: kept } : { addresses: kept },
    );
    return {
      ...state,
      placement,
      history: { ...state.history, events: state.history.events + HISTORY_COST.task },
    };
  };
}

/** The PreparePlacement step as a Hono app. */
export function createPreparePlacementApp(deps: Pick<ControlPlaneDeps, "agents" | "store" | "clock">): Hono {
  return createStepApp({
    name: "prepare-placement",
    input: ExecutionStateSchema,
    handle: createPreparePlacement(deps),
  });
}
