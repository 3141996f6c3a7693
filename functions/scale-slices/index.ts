import { createHash } from "node:crypto";
import type { Hono } from "hono";
import type { ClusterHost, ClusterSlice } from "../../core/cluster-spec.js";
import { InsufficientSlices } from "../../core/errors.js";
import { acceptableSliceCounts, type JobSpec } from "../../core/job-spec.js";
import { matchingSlices, providerType } from "../../core/placement.js";
import { attemptStore } from "../attempts.js";
import { stopIfCancelled } from "../cancellation.js";
import { type ControlPlaneDeps, HISTORY_COST } from "../deps.js";
import {
  type ExecutionState,
  ExecutionStateSchema,
  type KeptLeases,
  leaseIdOf,
  unitKeyOf,
} from "../state.js";
import { createStepApp } from "../step-app.js";
import {
  type LeaseRef,
  leaseInBatches,
  leaseTtlMs,
  releaseHeld,
  releaseHosts,
  renewUnits,
  type Unit,
} from "./leases.js";

export { leaseTtlMs, releaseHeld, releaseHosts } from "./leases.js";

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

/**
 * A poll delay shortened by up to a quarter, by a share fixed by the job's id and poll: two jobs
 * contending for the same slices that began waiting together drift apart, instead of each
 * grabbing part, giving it all back and trying again in lockstep.
 */
export function spreadDelaySeconds(seconds: number, jobId: string, polls: number): number {
  const share = createHash("sha256").update(`${jobId}\n${polls}`).digest().readUInt32BE(0) / 2 ** 32;
  return Math.max(1, seconds - Math.floor((seconds * share) / 4));
}

/**
 * How long a job restarting on slices its teardown kept waits for the slices its largest count
 * lacks, while the provider says they are on their way, before it falls back to a smaller count
 * of a flexible list (never past the scale timeout).
 */
export const FLEX_GRACE_SECONDS = 120;

/** The units of `cluster` a job can lease, in the cluster's order: whole TPU slices, or GPU/CPU hosts. */
export function unitsFor(job: JobSpec, cluster: readonly ClusterSlice[]): { units: Unit[] } {
  const acc = job.accelerator;
  if (acc.kind === "tpu") {
    // Whole slices only (worker ids 0..n-1, as PreparePlacement requires): a broken one leased
    // here would make every attempt unhealthy while a whole slice waits unused.
    return {
      units: matchingSlices(acc, cluster).map((slice) => ({
        slice,
        hosts: [...slice.hosts].sort((a, b) => a.workerId - b.workerId),
        key: unitKeyOf("tpu", slice.name, ""),
      })),
    };
  }
  // GPU/CPU: every matching host is a unit of its own; the job needs `hosts` of them.
  return {
    units: matchingSlices(acc, cluster).flatMap((slice) =>
      slice.hosts.map((h) => ({ slice, hosts: [h], key: unitKeyOf(acc.kind, slice.name, h.address) })),
    ),
  };
}

/**
 * ScaleSlices: lease the job's slices for the next attempt — an exact count, or the largest
 * feasible of a flexible list — all or nothing. Short of the largest count it asks the
 * provider's autoscaler for the rest. Short of every count it answers `pending` (the machine
 * waits and comes back) until the scale timeout, then raises {@link InsufficientSlices}, which
 * counts as a preemption. A restart on kept slices whose largest count is on its way waits for
 * it a while ({@link FLEX_GRACE_SECONDS}) before it settles for a smaller one.
 */
export function createScaleSlices(
  deps: Pick<ControlPlaneDeps, "provider" | "agents" | "store" | "clock" | "log">,
) {
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
    const largestFirst = [...wanted].sort((a, b) => b - a);
    const max = Math.max(...wanted);
    const ttlMs = leaseTtlMs(job);
    const lease = { leaseId: leaseIdOf(jobId, attempt), jobId, epoch: attempt, ttlMs };
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
    const leaseOf = (u: Unit): LeaseRef => (keptLease && kept.has(u) ? keptLease : lease);
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
    // Units held are renewed (those no longer held dropped) when a third of the lease has passed:
    // batches behind agents that never answer can take longer than a lease lasts.
    let renewedAt = deps.clock.now();
    const keepFresh = async () => {
      if (deps.clock.now() - renewedAt < ttlMs / 3 || got.length === 0) return;
      renewedAt = deps.clock.now();
      const lost = new Set(await renewUnits(deps.agents, got, leaseOf, ttlMs));
      if (lost.size === 0) return;
      await giveBack([...lost]);
      got.splice(0, got.length, ...got.filter((u) => !lost.has(u)));
    };
    // Units a scale-up leased for this attempt are tried first (under an older epoch, when the
    // attempt that was to take them faulted, the agent lets this job's newer lease take over).
    const grown = new Set(state.grown?.units ?? []);
    const candidates = [
      ...units.filter((u) => !kept.has(u) && grown.has(u.key)),
      ...units.filter((u) => !kept.has(u) && !grown.has(u.key)),
    ];
    await leaseInBatches(deps.agents, candidates, lease, got, max, keepFresh);
    // In the cluster's order, kept or not (slice 0 stays slice 0 when it survives).
    const order = new Map(units.map((u, i) => [u, i]));
    got.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
    const chosen = largestFirst.find((n) => n <= got.length);
    const history = {
      ...state.history,
      events: state.history.events + HISTORY_COST.task + HISTORY_COST.choice,
    };
    const type = providerType(acc);
    const waited = (now - startedAt) / 1000;
    /** The state that has the machine wait `until` (at the latest) and come back. */
    const pending = (
      until: number,
      keptNow: KeptLeases | undefined,
      grownNow?: KeptLeases | undefined,
    ): ExecutionState => {
      const delay = spreadDelaySeconds(pollDelaySeconds(polls, waited), jobId, polls);
      const waitSeconds = Math.max(1, Math.min(delay, Math.ceil((until - now) / 1000)));
      return {
        ...state,
        attempt,
        history: { ...history, events: history.events + HISTORY_COST.wait },
        scale: { status: "pending", startedAt, deadline, polls, waitSeconds, wanted, available: got.length },
        kept: keptNow,
        grown: grownNow,
      };
    };
    /** Grown units still under an older lease and not among `held`: given back under it. */
    const releaseStaleGrown = async (held: readonly Unit[]) => {
      const older = state.grown?.epoch;
      if (older === undefined || older === attempt) return;
      const keys = new Set(held.map((u) => u.key));
      const stale = units.filter((u) => grown.has(u.key) && !keys.has(u.key));
      await releaseHosts(
        deps.agents,
        stale.flatMap((u) => u.hosts),
        { leaseId: leaseIdOf(jobId, older), epoch: older },
      );
    };
    // Short of the largest count: ask for the rest. The provider does not ask again for what is
    // on its way, so asking on every poll for all that is missing does not over-ask. An
    // autoscaler that fails is logged, never the step's failure: an attempt that can run runs,
    // and one that cannot waits as it would have.
    const lacking = max - got.length;
    const askForMore = async () => {
      try {
        await deps.provider.requestSlices(type, lacking);
      } catch (e) {
        deps.log?.(
          `scale-slices: ${jobId}: asking the provider for ${lacking} more ${type} failed: ${(e as Error).message}`,
        );
      }
    };
    if (chosen !== undefined && lacking > 0) await askForMore();
    if (chosen !== undefined && chosen < max && state.kept) {
      // A restart on kept slices (a preempted one's replacement being provisioned, say): while
      // the provider brings up what a larger count lacks (already, or since the request above),
      // hold the kept slices and wait a while, rather than give one back and run smaller for as
      // long as the attempt lasts.
      const keptHeld = got.filter((u) => kept.has(u));
      const graceEnds = Math.min(startedAt + FLEX_GRACE_SECONDS * 1000, deadline);
      const coming =
        keptHeld.length > 0 && now < graceEnds
          ? await (deps.provider.pendingSlices?.(type) ?? Promise.resolve(0)).catch(() => 0)
          : 0;
      const reachable = largestFirst.find((n) => n <= got.length + coming) ?? 0;
      if (reachable > chosen) {
        // Slices a scale-up brought are held too: the restart was made for them.
        const grownHeld = got.filter((u) => !kept.has(u) && grown.has(u.key));
        await giveBack(got.filter((u) => !kept.has(u) && !grown.has(u.key)));
        const lost = new Set(await renewUnits(deps.agents, [...keptHeld, ...grownHeld], leaseOf, ttlMs));
        await giveBack([...lost]);
        await releaseStaleGrown(grownHeld);
        const still = keptHeld.filter((u) => !lost.has(u)).map((u) => u.key);
        const grownStill = grownHeld.filter((u) => !lost.has(u)).map((u) => u.key);
        return pending(
          graceEnds,
          still.length > 0 ? { epoch: state.kept.epoch, units: still } : undefined,
          grownStill.length > 0 ? { epoch: attempt, units: grownStill } : undefined,
        );
      }
    }
    if (chosen !== undefined) {
      // Keep the chosen units, give back the rest.
      await giveBack(got.splice(chosen));
      await releaseStaleGrown(got);
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
        grown: undefined,
      };
    }
    // Not enough: give back what we hold (before anything else is tried) and come back later
    // (or give up).
    await giveBack(got);
    await releaseStaleGrown([]);
    if (now >= deadline) {
      throw new InsufficientSlices(wanted, got.length, type, acc.kind === "tpu" ? "slices" : "hosts");
    }
    await askForMore();
    return pending(deadline, undefined);
  };
}

/** The ScaleSlices step as a Hono app. */
export function createScaleSlicesApp(
  deps: Pick<ControlPlaneDeps, "provider" | "agents" | "store" | "clock" | "log">,
): Hono {
  return createStepApp({
    name: "scale-slices",
    input: ExecutionStateSchema,
    handle: createScaleSlices(deps),
  });
}
