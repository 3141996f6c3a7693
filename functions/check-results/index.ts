import type { Hono } from "hono";
import {
  type AttemptProblem,
  classifyAttempt,
  decideAfterAttempt,
  type RetryDecision,
} from "../../core/classification.js";
import { InternalError } from "../../core/errors.js";
import type { HostInfo, JobStatus } from "../../core/job-status.js";
import { orderResults } from "../../core/results.js";
import { jsonBytes, serializeError, shortenError } from "../../core/serialized-error.js";
import { tpuType } from "../../core/tpu-catalog.js";
import {
  type AttemptRecord,
  type AttemptStore,
  attemptStore,
  caughtToError,
  type HostEnd,
  keys,
} from "../attempts.js";
import { type ControlPlaneDeps, FAN_OUT, HISTORY_BUDGET, HISTORY_COST, mapLimit } from "../deps.js";
import { exitFailed, workloadError } from "../ingest/events.js";
import { type AttemptCompletion, errorCause } from "../resolution.js";
import { type ExecutionState, ExecutionStateSchema, jobInfo } from "../state.js";
import { createStepApp } from "../step-app.js";
import { lostHosts } from "./lost-hosts.js";

/**
 * CheckResults' whole output (not the status alone: placement at 1,024 hosts takes ~160 KB) stays
 * within this many bytes of JSON, or per-host detail and then the results move to the results
 * store. Below Step Functions' 256 KiB with room for what the machine adds (a Catch's `fault`).
 */
export const STATE_BUDGET_BYTES = 200 * 1024;
/** Per-host detail is kept in the status up to this many hosts (all of it is in the store). */
export const INLINE_HOSTS = 256;
/** Step Functions' limit on a Fail state's cause. */
const MAX_CAUSE_CHARS = 32_768;
/** The error in a cause too long for that limit: shorter than the state keeps it. */
const CAUSE_ERROR_BYTES = 4 * 1024;

/**
 * The wait before trying again after the `n`th unhealthy attempt in a row: 1 s, doubling to a
 * minute, so an inventory or provider has time to heal before the bound on such attempts ends it.
 */
export const unhealthyWaitSeconds = (n: number): number => Math.min(60, 2 ** Math.max(0, n - 1));

function hostProblems(
  state: ExecutionState,
  record: AttemptRecord | undefined,
  ends: Map<string, HostEnd>,
): AttemptProblem[] {
  const out: AttemptProblem[] = [];
  for (const h of record?.hosts ?? []) {
    const end = ends.get(`${h.sliceIndex}-${h.hostIndex}`);
    if (!end || end.cancelled) continue;
    const ctx = {
      metadataPreempted: end.metadataPreempted,
      retryOnExitCodes: state.job.retry.retryOnExitCodes,
    };
    if (end.kind === "preempted") {
      out.push({
        error: { name: "Preempted", message: `host ${h.address} of ${h.sliceName} preempted` },
        ...ctx,
      });
    } else if (end.kind === "lost") {
      out.push({
        error: { name: "LeaseExpired", message: `host ${h.address} of ${h.sliceName} freed itself` },
        ...ctx,
      });
    } else if (exitFailed(end)) {
      out.push({
        error: workloadError(end, h),
        ...ctx,
      });
    }
  }
  return out;
}

function hostInfos(
  state: ExecutionState,
  record: AttemptRecord | undefined,
  ends: Map<string, HostEnd>,
): HostInfo[] {
  const acc = state.job.accelerator;
  const devices = acc.kind === "tpu" ? tpuType(acc.type).chipsPerHost : acc.kind === "gpu" ? acc.count : 0;
  return (record?.hosts ?? []).map((h) => {
    const end = ends.get(`${h.sliceIndex}-${h.hostIndex}`);
    const failed = end !== undefined && (end.kind !== "exited" || exitFailed(end));
    return {
      sliceIndex: h.sliceIndex,
      sliceName: h.sliceName,
      hostIndex: h.hostIndex,
      address: h.address,
      numDevices: devices,
      healthy: end?.kind !== "preempted" && end?.kind !== "lost",
      failed: failed && !end?.cancelled,
      state: end ? (end.cancelled ? "cancelled" : end.kind) : "running",
      exitCode: end?.exitCode ?? null,
      signal: end?.signal ?? null,
    };
  });
}

/** A Fail state's cause: the status as JSON, trimmed to Step Functions' limit. */
export function causeText(status: JobStatus): string {
  let text = JSON.stringify(status);
  if (text.length <= MAX_CAUSE_CHARS) return text;
  const { hosts: _hosts, ...lean } = status;
  text = JSON.stringify(
    "error" in lean && lean.error ? { ...lean, error: shortenError(lean.error, CAUSE_ERROR_BYTES) } : lean,
  );
  return text.length <= MAX_CAUSE_CHARS
    ? text
    : JSON.stringify({ status: status.status, info: status.info, counters: status.counters });
}

/** Errors the engine raises when an attempt's task timed out (its heartbeat, or its time limit). */
const TIMEOUTS = new Set(["States.HeartbeatTimeout", "States.Timeout"]);

/**
 * A timeout ends the attempt only if nothing ended it first. Ingest may have decided the
 * attempt (every host exited 0, a host failed, a notice) and failed to reach the token — or
 * stopped heartbeating it once decided — so the engine's timeout can come after the real end.
 * The timeout is decided like any other end (first writer wins); when another end won, the
 * attempt is judged on that one: a success is not run again, a failure is not taken for a
 * preemption.
 */
async function settleTimeout(attempts: AttemptStore, state: ExecutionState, now: number) {
  if (!state.placement || state.problem === undefined || !TIMEOUTS.has(state.problem.Error)) return state;
  const timedOut = { kind: "failed" as const, at: now, error: caughtToError(state.problem) };
  if (await attempts.decide(state.jobId, state.attempt, timedOut)) return state;
  const outcome = await attempts.outcome(state.jobId, state.attempt);
  if (!outcome) return state;
  if (outcome.kind === "succeeded") {
    const { problem: _timeout, ...rest } = state;
    return { ...rest, completion: { outcome: "succeeded", at: outcome.at } satisfies AttemptCompletion };
  }
  return { ...state, problem: { Error: outcome.error.name, Cause: errorCause(outcome.error) } };
}

/**
 * CheckResults: collect every host's exit and result, classify the attempt (FACTS.md), count
 * it against the budgets, and decide: retry (after a wait when slices could not be had), continue
 * in a new execution before the history limit, or stop with the final JobStatus — results in
 * slice-then-host order, flat or nested by slice.
 */
export function createCheckResults(
  deps: Pick<ControlPlaneDeps, "agents" | "store" | "clock" | "historyBudget">,
) {
  const attempts = attemptStore(deps.store);
  return async (given: ExecutionState): Promise<ExecutionState> => {
    const state = await settleTimeout(attempts, given, deps.clock.now());
    const record = state.placement ? await attempts.record(state.jobId, state.attempt) : undefined;
    const ends = record ? await attempts.hostEnds(state.jobId, state.attempt) : new Map<string, HostEnd>();
    const problems: AttemptProblem[] = [];
    if (state.problem)
      problems.push({
        error: caughtToError(state.problem),
        retryOnExitCodes: state.job.retry.retryOnExitCodes,
      });
    problems.push(...hostProblems(state, record, ends));
    if (!state.problem && state.completion === undefined) {
      problems.push({
        error: serializeError(new InternalError("CheckResults reached without a completion or a problem")),
      });
    }
    let verdict = classifyAttempt(problems);
    // A cancel that came after every host had finished is too late: the job succeeded, and its
    // results are not thrown away.
    const cancel = await attempts.cancelRequested(state.jobId);
    if ((cancel && verdict.outcome !== "succeeded") || state.problem?.Error === "JobCancelled") {
      return cancelled(state, cancel?.reason ?? "cancelled", record, ends);
    }
    // A failure may be the wake of a lost host: look at the others before counting it.
    if (verdict.outcome === "failed" && record && record.hosts.length > 1) {
      const lost = await lostHosts(deps.agents, record, ends);
      if (lost.length > 0) verdict = classifyAttempt([...problems, ...lost]);
    }
    let decision: RetryDecision = decideAfterAttempt(state.retry, verdict, state.job.retry);

    let results: unknown[] | unknown[][] | undefined;
    if (decision.action === "stop" && decision.status === "SUCCEEDED") {
      try {
        results = await collectResults(state, record, ends);
      } catch (e) {
        // Results that cannot be read are a fault of the runtime: count it and go on.
        decision = decideAfterAttempt(
          state.retry,
          { outcome: "error", problem: serializeError(e), fatal: false },
          state.job.retry,
        );
      }
    }
    const history = {
      ...state.history,
      events: state.history.events + HISTORY_COST.task * 3 + HISTORY_COST.choice * 2,
    };
    const base: ExecutionState = { ...state, retry: decision.state, history };
    await attempts.setCurrent(state.jobId, {
      attempt: state.attempt,
      executionArn: state.executionArn,
      state: "tearing-down",
      updatedAt: deps.clock.now(),
    });
    if (decision.action === "retry") {
      const insufficient = verdict.problem?.name === "InsufficientSlices";
      const action = history.events > (deps.historyBudget ?? HISTORY_BUDGET) ? "continue" : "retry";
      return {
        ...base,
        decision: {
          action,
          reason: decision.reason,
          waitSeconds: insufficient
            ? 5
            : decision.reason === "unhealthy"
              ? unhealthyWaitSeconds(decision.state.abandonedInARow ?? 1)
              : 0,
        },
      };
    }
    const info = jobInfo(state, decision.status.toLowerCase());
    const counters = {
      attempts: decision.state.attempts,
      preemptions: decision.state.preemptions,
      failures: decision.state.failures,
      ...(decision.state.scaledUp ? { scaledUp: decision.state.scaledUp } : {}),
    };
    const infos = hostInfos(state, record, ends);
    const hosts = infos.length <= INLINE_HOSTS ? infos : undefined;
    let status: JobStatus =
      decision.status === "SUCCEEDED"
        ? { status: "SUCCEEDED", info, counters, hosts, result: results }
        : { status: decision.status, info, counters, hosts, error: decision.error };
    await deps.store.put(keys.status(state.jobId), JSON.stringify({ ...status, hosts: infos }));
    const stopped = decision.status;
    const output = (status: JobStatus): ExecutionState => ({
      ...base,
      decision: { action: "stop", status: stopped, waitSeconds: 0 },
      final: {
        status,
        error: status.status === "SUCCEEDED" ? "" : (status.error?.name ?? status.status),
        cause: causeText(status),
      },
    });
    // Too large: per-host detail stays out first (status.json has it), then the results travel
    // as a reference, with the detail back if that leaves room.
    const over = (s: JobStatus) => jsonBytes(output(s)) > STATE_BUDGET_BYTES;
    if (over(status)) {
      const lean: JobStatus = { ...status, hosts: undefined };
      if (lean.status === "SUCCEEDED" && over(lean)) {
        const key = keys.results(state.jobId);
        const text = JSON.stringify(results);
        await deps.store.put(key, text);
        const ref: JobStatus = {
          ...lean,
          result: { resultRef: { store: key, bytes: Buffer.byteLength(text) } },
        };
        status = over({ ...ref, hosts: status.hosts }) ? ref : { ...ref, hosts: status.hosts };
      } else status = lean;
    }
    return output(status);
  };

  async function cancelled(
    state: ExecutionState,
    reason: string,
    record: AttemptRecord | undefined,
    ends: Map<string, HostEnd>,
  ) {
    const counters = {
      // A cancel that came before anything was placed ended no attempt: none is counted.
      attempts: state.retry.attempts + (state.placement ? 1 : 0),
      preemptions: state.retry.preemptions,
      failures: state.retry.failures,
      ...(state.retry.scaledUp ? { scaledUp: state.retry.scaledUp } : {}),
    };
    const infos = hostInfos(state, record, ends);
    const status: JobStatus = {
      status: "CANCELLED",
      info: jobInfo(state, "cancelled"),
      counters,
      hosts: infos.length <= INLINE_HOSTS ? infos : undefined,
      error: shortenError({ name: "JobCancelled", message: `job ${state.jobId} cancelled: ${reason}` }),
    };
    await deps.store.put(keys.status(state.jobId), JSON.stringify({ ...status, hosts: infos }));
    return {
      ...state,
      retry: { ...state.retry, attempts: counters.attempts },
      decision: { action: "stop" as const, status: "CANCELLED" as const, waitSeconds: 0 },
      final: { status, error: "JobCancelled", cause: causeText(status) },
    };
  }

  async function collectResults(
    state: ExecutionState,
    record: AttemptRecord | undefined,
    ends: Map<string, HostEnd>,
  ) {
    const hosts = record?.hosts ?? [];
    const values = await mapLimit(hosts, FAN_OUT, async (h) => {
      const end = ends.get(`${h.sliceIndex}-${h.hostIndex}`);
      if (end?.resultRef) {
        const reply = await deps.agents
          .agent(end.resultRef.agent)
          .readResult({ jobId: state.jobId, attempt: state.attempt });
        if (!reply.present)
          throw new InternalError(`result of ${h.sliceName} host ${h.hostIndex} is gone from ${h.agent}`);
        return JSON.parse(reply.resultJson) as unknown;
      }
      return end?.result ?? null;
    });
    return orderResults(
      hosts.map((h, i) => ({ sliceIndex: h.sliceIndex, hostIndex: h.hostIndex, result: values[i] })),
      state.job.flatten,
    );
  }
}

/** The CheckResults step as a Hono app. */
export function createCheckResultsApp(
  deps: Pick<ControlPlaneDeps, "agents" | "store" | "clock" | "historyBudget">,
): Hono {
  return createStepApp({
    name: "check-results",
    input: ExecutionStateSchema,
    handle: createCheckResults(deps),
  });
}
