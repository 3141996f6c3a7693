import type { Hono } from "hono";
import type { ClusterHost, ClusterSlice } from "../../core/cluster-spec.js";
import { GangwayError } from "../../core/errors.js";
import type { JobStatus } from "../../core/job-status.js";
import { type SerializedError, serializeError } from "../../core/serialized-error.js";
import { attemptStore, caughtToError, keys, noticeUnit } from "../attempts.js";
import { type ControlPlaneDeps, FAN_OUT, HISTORY_COST, mapLimit } from "../deps.js";
import type { AgentStatus } from "../ports.js";
import { leaseTtlMs, releaseHosts } from "../scale-slices/index.js";
import {
  type ExecutionState,
  ExecutionStateSchema,
  jobInfo,
  type KeptLeases,
  leaseIdOf,
  unitKeyOf,
} from "../state.js";
import { createStepApp } from "../step-app.js";

/** A process of the attempt is still alive after teardown; the state machine retries teardown. */
export class TeardownIncomplete extends GangwayError {
  override readonly name = "TeardownIncomplete";
}

/** Processes of the attempt outlived the job's `teardownSeconds`: the job stops rather than run beside them. */
export class TeardownTimedOut extends GangwayError {
  override readonly name = "TeardownTimedOut";
}

/** gRPC FAILED_PRECONDITION: the agent holds another lease than the one named. */
const LEASE_CONFLICT = 9;

interface HostOutcome {
  slice: string;
  unit: string;
  host: ClusterHost;
  reachable: boolean;
  alive: boolean;
  preempted?: boolean;
  /** The lease (epoch) the host still holds for this job, when the teardown kept it. */
  heldEpoch?: number | undefined;
}

/**
 * A host that answered: alive while a process of this job's attempt (or an older one) runs there,
 * or while processes of it outlived SIGKILL (`leftoverPids`, from the agent's reply).
 */
function answered<T extends Pick<HostOutcome, "slice" | "unit" | "host">>(
  base: T,
  status: AgentStatus,
  jobId: string,
  epoch: number,
  leftoverPids: readonly number[] = [],
): HostOutcome {
  const run = status.run;
  const ours = run && run.jobId === jobId && run.attempt <= epoch;
  const alive = Boolean(ours && !run?.exited) || leftoverPids.length > 0;
  return { ...base, reachable: true, alive, preempted: status.preempted };
}

/**
 * Teardown: on every host of the attempt, cancel the workload (SIGTERM, the job's grace, SIGKILL
 * of the whole process group); the next attempt starts only once no process of this one is
 * alive, so no leftover can join it. When the job goes round again, healthy units keep their
 * leases (an in-place restart: the next attempt takes them over in its Run, with no new lease,
 * status or placement round trip); otherwise, and for preempted or unreachable units, leases are
 * released. Unreachable hosts free themselves when their lease expires (their commands carry a
 * stale epoch from now on); units that were preempted or unreachable go back to the provider,
 * which deletes them.
 */
export function createTeardown(
  deps: Pick<ControlPlaneDeps, "agents" | "store" | "provider" | "clock" | "log">,
) {
  const attempts = attemptStore(deps.store);
  return async (state: ExecutionState): Promise<ExecutionState> => {
    const epoch = state.attempt;
    const graceMs = state.job.timeouts.cancelGraceSeconds * 1000;
    const kind = state.job.accelerator.kind;
    const slices = state.scale?.slices ?? [];
    const keptBefore = state.scale?.kept;
    const keptUnits = new Set(keptBefore?.units ?? []);
    const hosts = slices.flatMap((s) =>
      s.hosts.map((h) => ({ ...h, slice: s.name, unit: unitKeyOf(kind, s.name, h.address) })),
    );

    // What is already known to be preempted: the notice's slice, and hosts whose end said so.
    // A host that freed itself when its lease lapsed ("lost") is not: its VM is healthy, may be
    // leased to another job by now, and is asked below like any other.
    const preempted = new Set<string>();
    const noticed =
      state.problem?.Error === "Preempted" ? caughtToError(state.problem).details?.slice : undefined;
    if (typeof noticed === "string") preempted.add(noticed);
    if (state.placement && epoch >= 1) {
      const ends = await attempts.hostEnds(state.jobId, epoch);
      const record = await attempts.record(state.jobId, epoch);
      for (const h of record?.hosts ?? []) {
        const end = ends.get(`${h.sliceIndex}-${h.hostIndex}`);
        if (end?.kind === "preempted" || end?.metadataPreempted) preempted.add(h.sliceName);
      }
    }
    // Keep leases only to go round again soon: a wait longer than half the lease would let it lapse.
    const ttlMs = leaseTtlMs(state.job);
    // Never after a fault: the cleanup runs on the state the faulted step had, whose decision may
    // still say "retry" — but nothing goes round again, and every lease must go.
    const retrying =
      state.fault === undefined &&
      state.decision?.action === "retry" &&
      state.decision.waitSeconds * 1000 < ttlMs / 2;

    const outcomes: HostOutcome[] =
      epoch < 1
        ? []
        : await mapLimit(hosts, FAN_OUT, async (h): Promise<HostOutcome> => {
            const base = { slice: h.slice, unit: h.unit, host: h };
            if (!h.agent) return { ...base, reachable: false, alive: false };
            const agent = deps.agents.agent(h.agent);
            const keep = retrying && !preempted.has(h.slice);
            const stop = async (held: number) => {
              const lease = { leaseId: leaseIdOf(state.jobId, held), epoch: held, graceMs };
              const reply = keep ? await agent.cancel(lease) : await agent.releaseLease(lease);
              return { status: reply.status ?? (await agent.status()), leftoverPids: reply.leftoverPids };
            };
            try {
              let held = epoch;
              let stopped: { status: AgentStatus; leftoverPids?: number[] | undefined };
              try {
                stopped = await stop(held);
              } catch (e) {
                // A kept unit the attempt never launched on still holds the older lease.
                const older = keptBefore?.epoch;
                if ((e as { code?: unknown }).code !== LEASE_CONFLICT || !older || !keptUnits.has(h.unit))
                  throw e;
                held = older;
                stopped = await stop(held);
              }
              const outcome = answered(base, stopped.status, state.jobId, epoch, stopped.leftoverPids);
              return { ...outcome, heldEpoch: keep ? held : undefined };
            } catch (e) {
              // Our lease lapsed (and maybe another job holds the host now): the host answered,
              // it is neither lost nor ours to keep; whether a process of ours is left is asked.
              if ((e as { code?: unknown }).code === LEASE_CONFLICT) {
                const status = await agent.status().catch(() => undefined);
                if (status) return answered(base, status, state.jobId, epoch);
              }
              return { ...base, reachable: false, alive: false };
            }
          });
    const alive = outcomes.filter((o) => o.alive);
    /** Release `held` hosts under the lease each holds (kept ones hold this attempt's). */
    const release = async (held: HostOutcome[]) => {
      for (const epochHeld of new Set(held.map((o) => o.heldEpoch))) {
        if (epochHeld === undefined) continue;
        await releaseHosts(
          deps.agents,
          held.filter((o) => o.heldEpoch === epochHeld).map((o) => o.host),
          { leaseId: leaseIdOf(state.jobId, epochHeld), epoch: epochHeld },
          graceMs,
        );
      }
    };
    /** Give the preempted and unreachable slices back to the provider, which replaces them. */
    const givePreemptedBack = async () => {
      for (const o of outcomes) if (!o.reachable || o.preempted) preempted.add(o.slice);
      if (preempted.size === 0) return;
      const gone = slices.filter((s) => preempted.has(s.name));
      await deps.provider.releaseSlices(gone, "preempted");
      // Their notices were acted on: nothing is left for a later attempt to heed.
      await attempts.clearNoticed(state.jobId, gone.flatMap(noticeUnit.all));
    };
    if (alive.length > 0 && retrying && state.grown) await renewUnplaced(deps, state, state.grown);
    const triesKey = keys.teardownTries(state.jobId, epoch);
    if (alive.length > 0) {
      // Retried by the state machine until `teardownSeconds` after the first try, then given up.
      const store = attempts.store;
      const startedKey = keys.teardownStarted(state.jobId, epoch);
      await store.create(startedKey, String(deps.clock.now()));
      let since = Number((await store.get(startedKey)) || Number.NaN);
      // Left empty by a writer killed mid-write (before the store wrote whole files): start now,
      // rather than read it as 1970 and give up on the first try.
      if (!Number.isFinite(since) || since <= 0) {
        since = deps.clock.now();
        await store.put(startedKey, String(since));
      }
      await store.put(triesKey, String(Number((await store.get(triesKey)) ?? 0) + 1));
      const limitMs = state.job.timeouts.teardownSeconds * 1000;
      const details = { slices: [...new Set(alive.map((o) => o.slice))] };
      const what = `${alive.length} workload process group(s) of attempt ${epoch}`;
      if (deps.clock.now() - since < limitMs) throw new TeardownIncomplete(`${what} still alive`, details);
      const timedOut = new TeardownTimedOut(
        `${what} still alive after ${limitMs / 1000} s of teardown`,
        details,
      );
      // The job stops here. What is clean goes back at once rather than at its lease's end (hosts
      // cancelled to be kept hold this attempt's lease), and preempted slices to the provider; a
      // host whose process would not die keeps the lease until it lapses (it is of no use anyway).
      await release(outcomes.filter((o) => !o.alive));
      if (state.grown) await releaseUnplaced(deps, state, state.grown);
      await givePreemptedBack().catch((e: Error) =>
        deps.log?.(`teardown: ${state.jobId}: preempted slices not given back: ${e.message}`),
      );
      await closeJob(deps, state, timedOut);
      throw timedOut;
    }
    // Each failed try the state machine retried left events in the history that no step counted.
    const retried = Number((await attempts.store.get(triesKey)) ?? 0);
    for (const o of outcomes) if (!o.reachable || o.preempted) preempted.add(o.slice);

    // A unit is kept whole or not at all: every host answered, holds one lease, none preempted.
    const byUnit = new Map<string, HostOutcome[]>();
    for (const o of outcomes) {
      const members = byUnit.get(o.unit);
      if (members) members.push(o);
      else byUnit.set(o.unit, [o]);
    }
    const kept: string[] = [];
    const giveBack: HostOutcome[] = [];
    for (const [unit, members] of byUnit) {
      const epochs = new Set(members.map((m) => m.heldEpoch));
      const whole =
        retrying &&
        epochs.size === 1 &&
        !epochs.has(undefined) &&
        !members.some((m) => preempted.has(m.slice));
      if (whole && members[0]?.heldEpoch === epoch) kept.push(unit);
      else giveBack.push(...members.filter((m) => m.heldEpoch !== undefined));
    }
    // Units kept under the older lease (never launched on) are rare: give them back too, so
    // the next attempt finds every kept host under one epoch.
    await release(giveBack);
    if (state.kept) await releaseUnplaced(deps, state, state.kept);
    // Slices a scale-up leased for an attempt that will not come (the job stops, or continues
    // in a new execution, which starts afresh).
    const grown = retrying ? state.grown : undefined;
    if (state.grown && !grown) await releaseUnplaced(deps, state, state.grown);
    await givePreemptedBack();
    // A job continuing in a new execution is not done: it goes round again there, and until that
    // execution's Init the API, cancellation and ingest find it through this record. One whose
    // execution faulted (the continuation failed to start, say) is.
    const action = state.decision?.action;
    const stopping = state.fault !== undefined || (action !== "retry" && action !== "continue");
    // A continuation that started before its step failed owns the record by now: left to it.
    const current = state.fault && action === "continue" ? await attempts.current(state.jobId) : undefined;
    if (!current || current.executionArn === state.executionArn) {
      // A fault of gangway ends the job: its status says so, with its counters — unless a final
      // status was written before the fault (CheckResults decided, then a later step failed).
      if (state.fault !== undefined)
        await deps.store.create(
          keys.status(state.jobId),
          JSON.stringify(errorStatus(state, caughtToError(state.fault))),
        );
      await attempts.setCurrent(state.jobId, {
        attempt: epoch,
        executionArn: state.executionArn,
        state: stopping ? "done" : "scaling",
        updatedAt: deps.clock.now(),
      });
    }
    return {
      ...state,
      scale: undefined,
      placement: undefined,
      problem: undefined,
      completion: undefined,
      kept: kept.length > 0 ? { epoch, units: kept } : undefined,
      grown,
      history: {
        ...state.history,
        events: state.history.events + HISTORY_COST.task + retried * HISTORY_COST.failedTry,
      },
    };
  };
}

/**
 * Units this job leased that no attempt got placed on: kept by an earlier teardown (a ScaleSlices
 * poll that faulted while it waited for a larger count, say), or leased by a scale-up for an
 * attempt that will not come. Their hosts hold the lease of `held.epoch`, and nothing after this
 * step knows of them. Given back under that lease, the hosts found by unit in the provider's
 * list (a host another job holds by now refuses the release); if the list cannot be had, the
 * leases lapse at their TTL rather than fail the teardown.
 */
async function releaseUnplaced(
  deps: Pick<ControlPlaneDeps, "agents" | "provider" | "log">,
  state: ExecutionState,
  held: KeptLeases,
): Promise<void> {
  const hosts = await unplacedHosts(deps, state, held);
  if (hosts)
    await releaseHosts(deps.agents, hosts, {
      leaseId: leaseIdOf(state.jobId, held.epoch),
      epoch: held.epoch,
    });
}

/**
 * Renew the leases of units a scale-up leased for the next attempt, on every try of a teardown
 * that may outlast them (workloads slow to die); a host that no longer holds it is left to
 * ScaleSlices, which leases again what it can.
 */
async function renewUnplaced(
  deps: Pick<ControlPlaneDeps, "agents" | "provider" | "log">,
  state: ExecutionState,
  held: KeptLeases,
): Promise<void> {
  const hosts = await unplacedHosts(deps, state, held);
  const lease = {
    leaseId: leaseIdOf(state.jobId, held.epoch),
    epoch: held.epoch,
    ttlMs: leaseTtlMs(state.job),
  };
  await mapLimit(hosts ?? [], FAN_OUT, async (h) => {
    if (h.agent)
      await deps.agents
        .agent(h.agent)
        .renewLease(lease)
        .catch(() => undefined);
  });
}

/** The hosts of `held`'s units, found in the provider's list; undefined (logged) if it cannot be had. */
async function unplacedHosts(
  deps: Pick<ControlPlaneDeps, "provider" | "log">,
  state: ExecutionState,
  held: KeptLeases,
): Promise<ClusterHost[] | undefined> {
  const kind = state.job.accelerator.kind;
  const units = new Set(held.units);
  let cluster: ClusterSlice[];
  try {
    cluster = await deps.provider.listSlices();
  } catch (e) {
    deps.log?.(
      `teardown: ${state.jobId}: units ${held.units.join(", ")} left to lapse: ${(e as Error).message}`,
    );
    return undefined;
  }
  return cluster.flatMap((s) => s.hosts.filter((h) => units.has(unitKeyOf(kind, s.name, h.address))));
}

/** The ERROR status of a job stopped by `error` (teardown gave up, or a fault of gangway). */
function errorStatus(state: ExecutionState, error: SerializedError): JobStatus {
  return {
    status: "ERROR",
    info: jobInfo(state, "error"),
    counters: {
      attempts: state.retry.attempts,
      preemptions: state.retry.preemptions,
      failures: state.retry.failures,
      ...(state.retry.scaledUp ? { scaledUp: state.retry.scaledUp } : {}),
    },
    error,
  };
}

/**
 * A job that stops because teardown gave up: the job is done (ingest stops renewing the leases
 * of its hosts, which then free themselves) and its status says why, with its counters.
 */
async function closeJob(
  deps: Pick<ControlPlaneDeps, "store" | "clock">,
  state: ExecutionState,
  error: TeardownTimedOut,
): Promise<void> {
  await deps.store.put(keys.status(state.jobId), JSON.stringify(errorStatus(state, serializeError(error))));
  await attemptStore(deps.store).setCurrent(state.jobId, {
    attempt: state.attempt,
    executionArn: state.executionArn,
    state: "done",
    updatedAt: deps.clock.now(),
  });
}

/** The Teardown step as a Hono app. */
export function createTeardownApp(
  deps: Pick<ControlPlaneDeps, "agents" | "store" | "provider" | "clock" | "log">,
): Hono {
  return createStepApp({ name: "teardown", input: ExecutionStateSchema, handle: createTeardown(deps) });
}
