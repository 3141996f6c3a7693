import type { Hono } from "hono";
import { ScaleUp } from "../../core/errors.js";
import { leaseTtlSeconds, MAX_HEARTBEAT_SECONDS } from "../../core/job-spec.js";
import { providerType } from "../../core/placement.js";
import { largerSliceCounts } from "../../core/scale-up.js";
import { serializeError } from "../../core/serialized-error.js";
import { attemptStore } from "../attempts.js";
import { type ControlPlaneDeps, FAN_OUT, HISTORY_BUDGET, HISTORY_COST, mapLimit } from "../deps.js";
import { errorCause } from "../resolution.js";
import { unitsFor } from "../scale-slices/index.js";
import { leaseInBatches, leaseTtlMs, releaseHosts, type Unit } from "../scale-slices/leases.js";
import { awaitTimeoutSeconds, type ExecutionState, ExecutionStateSchema, leaseIdOf } from "../state.js";
import { createStepApp } from "../step-app.js";

type Running = NonNullable<ExecutionState["running"]>;

/**
 * CheckScaleUp: where AwaitAttempt goes when its timeout fires. LaunchHosts set that timeout to
 * the attempt's own limit or its next look for more slices, whichever comes first, so:
 * - the attempt's limit has passed (or the state has no clock): the timeout goes on to
 *   CheckResults as it came, and counts as a preemption;
 * - an outcome was decided or a cancel asked for meanwhile: back to AwaitAttempt, which sends it;
 * - a larger acceptable slice count can be had: the slices it lacks are leased for the next
 *   attempt and this one ends with {@link ScaleUp} — decided as the attempt's outcome, so that a
 *   host's end or a notice decided first wins — which raises no counter (its teardown keeps the
 *   slices it ran on, and ScaleSlices takes them and the new ones);
 * - otherwise the provider is asked for what the largest count lacks, and the attempt waits on
 *   until the next look, `scaleUp.checkSeconds` later.
 * Each round costs the execution about 13 history events; past the history budget the looks stop
 * (an attempt cannot continue as a new execution) and the attempt runs on at its size.
 */
export function createCheckScaleUp(
  deps: Pick<ControlPlaneDeps, "provider" | "agents" | "store" | "clock" | "historyBudget" | "log">,
) {
  const attempts = attemptStore(deps.store);
  return async (state: ExecutionState): Promise<ExecutionState> => {
    const now = deps.clock.now();
    const { job, jobId, attempt } = state;
    const history = {
      ...state.history,
      events: state.history.events + HISTORY_COST.task * 2 + HISTORY_COST.choice,
    };
    const running = state.running;
    const endAttempt = (extra: Partial<ExecutionState> = {}): ExecutionState => ({
      ...state,
      history,
      ...(running ? { running: { ...running, resume: false } } : {}),
      ...extra,
    });
    const limit = job.timeouts.attemptSeconds;
    if (!running || state.problem?.Error !== "States.Timeout") return endAttempt();
    if (limit !== undefined && now >= running.launchedAt + limit * 1000) return endAttempt();

    const resume = (scaleUpAt: number | undefined, lastLook?: string): ExecutionState => {
      const next: Running = { ...running, scaleUpAt, checks: running.checks + 1, resume: true, lastLook };
      return {
        ...state,
        history,
        problem: undefined,
        running: next,
        awaitTimeoutSeconds: awaitTimeoutSeconds(job, next, now),
      };
    };
    // Woken before the look is due (a timer that fired early by this clock): wait on for it.
    if (running.scaleUpAt === undefined || now < running.scaleUpAt - 1000) return resume(running.scaleUpAt);
    if (history.events > (deps.historyBudget ?? HISTORY_BUDGET))
      return resume(undefined, "no more looks: the execution's history is nearly full");
    const current = state.scale?.slices?.length ?? 0;
    const larger = largerSliceCounts(job, current);
    if (larger.length === 0) return resume(undefined);
    const nextLook = now + job.scaleUp.checkSeconds * 1000;
    // Held through this attempt's teardown, whose SIGTERM grace (a workload checkpointing) may
    // outlast a lease; Teardown and ScaleSlices renew it at the usual TTL.
    const ttlMs = Math.min(
      leaseTtlSeconds(MAX_HEARTBEAT_SECONDS) * 1000,
      leaseTtlMs(job) + job.timeouts.cancelGraceSeconds * 1000,
    );
    const lease = { leaseId: leaseIdOf(jobId, attempt + 1), jobId, epoch: attempt + 1, ttlMs };
    const got: Unit[] = [];
    const giveBack = (units: readonly Unit[]) =>
      releaseHosts(
        deps.agents,
        units.flatMap((u) => u.hosts),
        lease,
      );
    const largest = larger[larger.length - 1] as number;
    // Total: a look that fails (the provider or the store unreachable) costs the running attempt
    // nothing; it waits on and looks again later.
    try {
      // Whatever ended the attempt already comes first: AwaitAttempt delivers it.
      const [outcome, cancel] = await Promise.all([
        attempts.outcome(jobId, attempt),
        attempts.cancelRequested(jobId),
      ]);
      if (outcome || cancel) return resume(nextLook, "the attempt ended meanwhile");
      const mine = new Set(state.scale?.slices?.map((s) => s.name));
      const { units } = unitsFor(job, await deps.provider.listSlices());
      // A slice being preempted would cost the restart for nothing: after each batch, those with
      // a host that does not answer healthy go back and the next candidates are tried.
      const checked = new Set<Unit>();
      const keepHealthy = async () => {
        const healthy = await mapLimit(got, FAN_OUT, async (u) => {
          if (checked.has(u)) return true;
          checked.add(u);
          const ok = await Promise.all(
            u.hosts.map(async (h) => {
              const health = h.agent
                ? await deps.agents
                    .agent(h.agent)
                    .health()
                    .catch(() => undefined)
                : undefined;
              return health?.ok === true && !health.preempted;
            }),
          );
          return ok.every(Boolean);
        });
        await giveBack(got.filter((_, i) => !healthy[i]));
        got.splice(0, got.length, ...got.filter((_, i) => healthy[i]));
      };
      await leaseInBatches(
        deps.agents,
        units.filter((u) => !mine.has(u.key)),
        lease,
        got,
        largest - current,
        keepHealthy,
      );
      const target = [...larger].reverse().find((n) => n <= current + got.length);
      if (target === undefined) {
        await giveBack(got);
        await deps.provider.requestSlices(providerType(job.accelerator), largest - current);
        return resume(nextLook, "none to be had yet; the autoscaler asked");
      }
      const adding = got.slice(0, target - current);
      await giveBack(got.slice(target - current));
      const error = new ScaleUp(
        `growing from ${current} to ${target} slices: ${adding.length} more can be had`,
        {
          from: current,
          to: target,
          slices: adding.map((u) => u.key),
        },
      );
      const problem = serializeError(error);
      delete problem.stack;
      // The attempt's outcome, decided once: a host's end or a notice that came while the slices
      // were leased wins, and AwaitAttempt delivers it instead.
      if (!(await attempts.decide(jobId, attempt, { kind: "failed", at: now, error: problem }))) {
        await giveBack(adding);
        return resume(nextLook, "the attempt ended meanwhile");
      }
      await attempts.markDelivered(jobId, attempt);
      return endAttempt({
        problem: { Error: error.name, Cause: errorCause(problem) },
        grown: { epoch: attempt + 1, units: adding.map((u) => u.key) },
      });
    } catch (e) {
      await giveBack(got).catch(() => undefined);
      deps.log?.(`check-scale-up: ${jobId}: looking for more slices failed: ${(e as Error).message}`);
      return resume(nextLook, `the look failed: ${(e as Error).message}`.slice(0, 300));
    }
  };
}

/** The CheckScaleUp step as a Hono app. */
export function createCheckScaleUpApp(
  deps: Pick<ControlPlaneDeps, "provider" | "agents" | "store" | "clock" | "historyBudget" | "log">,
): Hono {
  return createStepApp({
    name: "check-scale-up",
    input: ExecutionStateSchema,
    handle: createCheckScaleUp(deps),
  });
}
