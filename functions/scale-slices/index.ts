import type { Hono } from "hono";
import type { ClusterHost, ClusterSlice } from "../../core/cluster-spec.js";
import { InsufficientSlices } from "../../core/errors.js";
import { acceptableSliceCounts, type JobSpec, leaseTtlSeconds } from "../../core/job-spec.js";
import { isWhole } from "../../core/placement.js";
import { tpuType } from "../../core/tpu-catalog.js";
import { attemptStore } from "../attempts.js";
import { stopIfCancelled } from "../cancellation.js";
import { type ControlPlaneDeps, FAN_OUT, HISTORY_COST, mapLimit } from "../deps.js";
import type { AgentConnector } from "../ports.js";
import { type ExecutionState, ExecutionStateSchema, leaseIdOf, unitKeyOf } from "../state.js";
import { createStepApp } from "../step-app.js";

/** How long a lease lasts without renewal: a control plane that dies strands no host for long. */
export function leaseTtlMs(job: JobSpec): number {
  return leaseTtlSeconds(job.timeouts.heartbeatSeconds) * 1000;
}

/** The longest wait between two polls of the provider. */
const MAX_POLL_DELAY_SECONDS = 300;

/**
 * Seconds to wait before polling the provider again: 1, 2, 3, 5, 8, then 10 — and, once the job
 * has waited long, a twentieth of the time waited so far (at most 5 minutes). Each poll costs
 * the execution 9 history events: at a steady 10 s a day's wait (the longest `scaleSeconds`)
 * would take 78,000 of the 25,000 an execution may have; this way it takes about 3,000.
 *
 * @example
 * pollDelaySeconds(0, 0) // 1
 * pollDelaySeconds(40, 3600) // 180
 */
export function pollDelaySeconds(polls: number, waitedSeconds = 0): number {
  const early = [1, 2, 3, 5, 8][polls] ?? 10;
  return Math.min(MAX_POLL_DELAY_SECONDS, Math.max(early, Math.floor(waitedSeconds / 20)));
}

interface Unit {
  /** The slice (TPU) or pool (GPU/CPU) the hosts belong to. */
  slice: ClusterSlice;
  hosts: ClusterHost[];
  /** Its name in {@link KeptLeases}: the slice's (TPU), the host's address (GPU/CPU). */
  key: string;
}

/** Lease every host of a unit, all or nothing: a partial grab is released at once. */
async function leaseUnit(
  agents: AgentConnector,
  unit: Unit,
  lease: { leaseId: string; jobId: string; epoch: number; ttlMs: number },
): Promise<boolean> {
  const held = await mapLimit(unit.hosts, FAN_OUT, async (h) => {
    if (!h.agent) return false;
    try {
      return (await agents.agent(h.agent).acquireLease(lease)).held;
    } catch {
      return false;
    }
  });
  if (held.every(Boolean)) return true;
  await releaseHosts(
    agents,
    unit.hosts.filter((_, i) => held[i]),
    lease,
  );
  return false;
}

/**
 * Release hosts the job holds: those of units the last teardown kept under the older lease they
 * still hold (`kept`), the others under this attempt's.
 */
export async function releaseHeld(
  agents: AgentConnector,
  hosts: readonly { host: ClusterHost; kept: boolean }[],
  lease: { leaseId: string; epoch: number },
  keptLease: { leaseId: string; epoch: number } | undefined,
): Promise<void> {
  await Promise.all([
    releaseHosts(
      agents,
      hosts.filter((h) => !h.kept).map((h) => h.host),
      lease,
    ),
    keptLease
      ? releaseHosts(
          agents,
          hosts.filter((h) => h.kept).map((h) => h.host),
          keptLease,
        )
      : undefined,
  ]);
}

/** Release the lease on hosts; unreachable ones free themselves when the lease expires. */
export async function releaseHosts(
  agents: AgentConnector,
  hosts: readonly ClusterHost[],
  lease: { leaseId: string; epoch: number },
  graceMs?: number,
): Promise<void> {
  await mapLimit(hosts, FAN_OUT, async (h) => {
    if (!h.agent) return;
    await agents
      .agent(h.agent)
      .releaseLease({
        leaseId: lease.leaseId,
        epoch: lease.epoch,
        ...(graceMs === undefined ? {} : { graceMs }),
      })
      .catch(() => undefined);
  });
}

function unitsFor(job: JobSpec, cluster: readonly ClusterSlice[]): { units: Unit[] } {
  const acc = job.accelerator;
  if (acc.kind === "tpu") {
    const hosts = tpuType(acc.type).hosts;
    // Whole slices only (worker ids 0..n-1, as PreparePlacement requires): a broken one leased
    // here would make every attempt unhealthy while a whole slice waits unused.
    const whole = cluster
      .filter((s) => s.kind === "tpu" && s.type === acc.type && isWhole(s, hosts))
      .sort((a, b) => a.name.localeCompare(b.name));
    return {
      units: whole.map((slice) => ({
        slice,
        hosts: [...slice.hosts].sort((a, b) => a.workerId - b.workerId),
        key: unitKeyOf("tpu", slice.name, ""),
      })),
    };
  }
  // GPU/CPU: every matching host is a unit of its own; the job needs `hosts` of them.
  const pools = cluster
    .filter((s) =>
      acc.kind === "gpu"
        ? s.kind === "gpu" && s.gpuType === acc.type && (s.gpusPerHost ?? 0) >= acc.count
        : s.kind === "cpu",
    )
    .sort((a, b) => a.name.localeCompare(b.name));
  return {
    units: pools.flatMap((slice) =>
      slice.hosts.map((h) => ({ slice, hosts: [h], key: unitKeyOf(acc.kind, slice.name, h.address) })),
    ),
  };
}

/**
 * ScaleSlices: lease the job's slices for the next attempt — an exact count, or the largest
 * feasible of a flexible list — all or nothing. Short of slices it asks the provider's
 * autoscaler and answers `pending` (the machine waits and comes back) until the scale timeout,
 * then raises {@link InsufficientSlices}, which counts as a preemption.
 */
export function createScaleSlices(deps: Pick<ControlPlaneDeps, "provider" | "agents" | "store" | "clock">) {
  const attempts = attemptStore(deps.store);
  return async (state: ExecutionState): Promise<ExecutionState> => {
    const now = deps.clock.now();
    const attempt = state.retry.attempts + 1;
    const fresh = state.scale?.status !== "pending";
    const startedAt = fresh ? now : (state.scale?.startedAt ?? now);
    const deadline = fresh ? now + state.job.timeouts.scaleSeconds * 1000 : (state.scale?.deadline ?? now);
    const polls = fresh ? 0 : (state.scale?.polls ?? 0) + 1;
    const { job, jobId } = state;
    const acc = job.accelerator;
    const wanted = acc.kind === "tpu" ? acceptableSliceCounts(acc) : [acc.hosts];
    const max = Math.max(...wanted);
    const lease = { leaseId: leaseIdOf(jobId, attempt), jobId, epoch: attempt, ttlMs: leaseTtlMs(job) };
    const cluster = await deps.provider.listSlices();
    const { units } = unitsFor(job, cluster);
    // Units the teardown kept are held already (an in-place restart: the Run takes their older
    // lease over); they come first, then as many more are leased at once as are still wanted —
    // units another job holds are skipped and the next candidates tried, until enough are held.
    const keptLease = state.kept
      ? { leaseId: leaseIdOf(jobId, state.kept.epoch), epoch: state.kept.epoch }
      : undefined;
    const keptKeys = new Set(state.kept?.units ?? []);
    const kept = new Set(units.filter((u) => keptKeys.has(u.key)));
    // A kept unit that is no unit any more (no longer whole, gone from its pool) is not taken:
    // its hosts still hold the older lease, given back here rather than left to lapse.
    const keptFound = new Set([...kept].map((u) => u.key));
    const unfit = cluster.flatMap((s) =>
      s.hosts.filter((h) => {
        const key = unitKeyOf(acc.kind, s.name, h.address);
        return keptKeys.has(key) && !keptFound.has(key);
      }),
    );
    if (keptLease && unfit.length > 0) await releaseHosts(deps.agents, unfit, keptLease);
    const giveBack = (these: readonly Unit[]) =>
      releaseHeld(
        deps.agents,
        these.flatMap((u) => u.hosts.map((host) => ({ host, kept: kept.has(u) }))),
        lease,
        keptLease,
      );
    try {
      await stopIfCancelled(attempts, state.jobId);
    } catch (e) {
      await giveBack([...kept]);
      throw e;
    }
    if (fresh)
      await attempts.setCurrent(jobId, {
        attempt,
        executionArn: state.executionArn,
        state: "scaling",
        updatedAt: now,
      });

    const got: Unit[] = [...kept].slice(0, max);
    await giveBack([...kept].slice(max));
    const candidates = units.filter((u) => !kept.has(u));
    // A host is in one unit of the job at most: where an inventory puts one host in two units (or
    // twice in one), placement would fail on every attempt, so such a unit is passed over.
    const taken = new Set(got.flatMap((u) => u.hosts.map((h) => h.address)));
    const fits = (u: Unit) =>
      new Set(u.hosts.map((h) => h.address)).size === u.hosts.length &&
      u.hosts.every((h) => !taken.has(h.address));
    let next = 0;
    while (got.length < max && next < candidates.length) {
      const batch: Unit[] = [];
      while (batch.length < max - got.length && next < candidates.length) {
        const u = candidates[next++] as Unit;
        if (!fits(u)) continue;
        for (const h of u.hosts) taken.add(h.address);
        batch.push(u);
      }
      const held = await mapLimit(
        batch,
        Math.max(1, Math.floor(FAN_OUT / (batch[0]?.hosts.length ?? 1))),
        (u) => leaseUnit(deps.agents, u, lease),
      );
      batch.forEach((u, i) => {
        if (held[i]) got.push(u);
        else for (const h of u.hosts) taken.delete(h.address);
      });
    }
    // In the cluster's order, kept or not (slice 0 stays slice 0 when it survives).
    const order = new Map(units.map((u, i) => [u, i]));
    got.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
    const chosen = [...wanted].sort((a, b) => b - a).find((n) => n <= got.length);
    const history = {
      ...state.history,
      events: state.history.events + HISTORY_COST.task + HISTORY_COST.choice,
    };
    if (chosen !== undefined) {
      // Keep the chosen units, give back the rest.
      await giveBack(got.splice(chosen));
      const keptNow = got.filter((u) => kept.has(u)).map((u) => u.key);
      const slices: ClusterSlice[] =
        acc.kind === "tpu"
          ? got.map((u) => u.slice)
          : [
              {
                name: got[0]?.slice.name ?? acc.kind,
                kind: acc.kind,
                type: acc.kind === "gpu" ? acc.type : "cpu",
                hosts: got.map((u, workerId) => ({ ...(u.hosts[0] as ClusterHost), workerId })),
              },
            ];
      return {
        ...state,
        attempt,
        history,
        problem: undefined,
        completion: undefined,
        decision: undefined,
        scale: {
          status: "ready",
          startedAt,
          deadline,
          polls,
          waitSeconds: 0,
          slices,
          wanted,
          available: got.length,
          kept: state.kept && keptNow.length > 0 ? { epoch: state.kept.epoch, units: keptNow } : undefined,
        },
        kept: undefined,
      };
    }
    // Not enough: give back what we hold, ask for more, and come back later (or give up).
    await giveBack(got);
    const min = Math.min(...wanted);
    const type = acc.kind === "tpu" ? acc.type : acc.kind === "gpu" ? `gpu-${acc.type}-${acc.count}` : "cpu";
    if (now >= deadline) {
      throw new InsufficientSlices(wanted, got.length, type, acc.kind === "tpu" ? "slices" : "hosts");
    }
    await deps.provider.requestSlices(type, Math.max(1, min - got.length));
    const waited = (now - startedAt) / 1000;
    const waitSeconds = Math.max(
      1,
      Math.min(pollDelaySeconds(polls, waited), Math.ceil((deadline - now) / 1000)),
    );
    return {
      ...state,
      attempt,
      history: { ...history, events: history.events + HISTORY_COST.wait },
      scale: { status: "pending", startedAt, deadline, polls, waitSeconds, wanted, available: got.length },
      kept: undefined,
    };
  };
}

/** The ScaleSlices step as a Hono app. */
export function createScaleSlicesApp(
  deps: Pick<ControlPlaneDeps, "provider" | "agents" | "store" | "clock">,
): Hono {
  return createStepApp({
    name: "scale-slices",
    input: ExecutionStateSchema,
    handle: createScaleSlices(deps),
  });
}
