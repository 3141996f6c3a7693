import { PreemptedTooManyTimes, UnhealthyTooManyTimes } from "./errors.js";
import { causeChain, type SerializedError, serializeError, shortenError } from "./serialized-error.js";

/**
 * What a problem means for the job (FACTS.md "Classification"):
 * - `preempted`: infrastructure loss, a timeout, or a task error on a host being preempted;
 * - `failed`: the workload's own failure;
 * - `error`: a fault of gangway's runtime, or an error of unknown name a step raised (counts
 *   against the failure budget; surfaces as ERROR);
 * - `unhealthy`: the attempt was abandoned before it ran because a slice was not whole (no counter;
 *   {@link MAX_UNHEALTHY_IN_A_ROW} in a row stop the job with ERROR);
 * - `scaled`: the attempt was ended on purpose to restart on more slices (no counter).
 */
export type ProblemKind = "preempted" | "failed" | "error" | "unhealthy" | "scaled";

/** Infrastructure loss: the ancestors' Ray names and gangway's own. Anywhere in the cause chain. */
export const INFRASTRUCTURE_LOSS = new Set([
  "Preempted",
  "HostUnreachable",
  "InsufficientSlices",
  "LeaseExpired",
  "HostLost",
  "NodeDiedError",
  "ActorDiedError",
  "ActorUnavailableError",
  "OwnerDiedError",
  "WorkerCrashedError",
  "ObjectLostError",
]);

/** Timeouts: a task whose cause is a timeout counts as preempted. Anywhere in the cause chain. */
export const TIMEOUTS = new Set([
  "AttemptTimedOut",
  "States.Timeout",
  "States.HeartbeatTimeout",
  "TimeoutError",
  "GetTimeoutError",
  "DeadlineExceeded",
]);

/** Faults of the runtime itself (eformer's JobError). */
export const SYSTEM_ERRORS = new Set([
  "InternalError",
  "RaySystemError",
  "States.Runtime",
  "States.DataLimitExceeded",
]);

/**
 * The workload's failures by name. Any other name is the workload's only when a host's end
 * carries it (see {@link fromWorkload}); otherwise a step of gangway raised it.
 */
export const WORKLOAD_FAILURES = new Set(["WorkloadFailed", "WorkloadStartFailed", "ResultTooLarge"]);

/**
 * A failure a host's workload reported: ingest and CheckResults stamp the host's exit on every
 * one (`details.exitCode`, null when killed), the user's own exception (`GANGWAY_ERROR_FILE`)
 * included. A name is no discriminator here: a user's `TypeError` is the workload's, a step's
 * is gangway's.
 */
export function fromWorkload(error: SerializedError): boolean {
  return WORKLOAD_FAILURES.has(error.name) || (error.details !== undefined && "exitCode" in error.details);
}

/** Errors no retry can cure: the job itself is wrong. The job stops at once with ERROR. */
export const FATAL_ERRORS = new Set(["InvalidJobSpec", "UnknownAcceleratorType"]);

/** Facts about the host a problem came from. */
export interface ProblemContext {
  /** The GCE metadata endpoint answered TRUE for the host's instance. */
  metadataPreempted?: boolean | undefined;
  /** The job's `retry.retryOnExitCodes`: exiting with one of them means "recover me". */
  retryOnExitCodes?: readonly number[] | undefined;
}

function exitCodeOf(error: SerializedError): number | undefined {
  const code = error.details?.exitCode;
  return typeof code === "number" ? code : undefined;
}

/**
 * Classify one problem. Pure; the table in test/unit/classification.test.ts is its specification.
 *
 * @example
 * classifyProblem({ name: "WorkloadFailed", message: "exit 1", details: { exitCode: 1 } }) // "failed"
 */
export function classifyProblem(error: SerializedError, ctx: ProblemContext = {}): ProblemKind {
  const chain = causeChain(error);
  if (FATAL_ERRORS.has(error.name) || SYSTEM_ERRORS.has(error.name)) return "error";
  if (chain.some((e) => INFRASTRUCTURE_LOSS.has(e.name) || TIMEOUTS.has(e.name))) return "preempted";
  if (error.name === "SliceUnhealthy") return "unhealthy";
  if (error.name === "ScaleUp") return "scaled";
  if (ctx.metadataPreempted) return "preempted";
  const exitCode = exitCodeOf(error);
  if (exitCode !== undefined && ctx.retryOnExitCodes?.includes(exitCode)) return "preempted";
  // An unknown name a step raised (Lambda.Unknown, States.TaskFailed, a TypeError of ours …)
  // is gangway's fault: ERROR, never shown as the workload's failure (eformer's JobError).
  return fromWorkload(error) ? "failed" : "error";
}

/** One problem of an attempt, with its host's facts. */
export interface AttemptProblem extends ProblemContext {
  error: SerializedError;
}

/** What one attempt amounts to. */
export interface AttemptVerdict {
  outcome: "succeeded" | ProblemKind;
  /** The problem that decided the outcome. */
  problem?: SerializedError | undefined;
  /** No retry can help (the job spec itself is wrong). */
  fatal: boolean;
}

/**
 * Classify an attempt from all of its problems (none = success). One attempt raises at most one
 * counter: any preemption → preempted; else any runtime error → error; else any failure →
 * failed; an attempt abandoned only because a slice was unhealthy, or ended only to grow onto
 * more slices, raises none.
 */
export function classifyAttempt(problems: readonly AttemptProblem[]): AttemptVerdict {
  if (problems.length === 0) return { outcome: "succeeded", fatal: false };
  const kinds = problems.map((p) => ({ p, kind: classifyProblem(p.error, p) }));
  const fatal = kinds.find(({ p }) => FATAL_ERRORS.has(p.error.name));
  if (fatal) return { outcome: "error", problem: fatal.p.error, fatal: true };
  for (const outcome of ["preempted", "error", "failed", "unhealthy", "scaled"] as const) {
    const hit = kinds.find((k) => k.kind === outcome);
    if (hit) return { outcome, problem: hit.p.error, fatal: false };
  }
  return { outcome: "failed", problem: problems[0]?.error, fatal: false };
}

/** Counters carried from attempt to attempt (and across continued executions). */
export interface RetryState {
  attempts: number;
  preemptions: number;
  failures: number;
  /** Attempts abandoned because a slice was unhealthy (raise no counter). */
  abandoned: number;
  /** Attempts ended to restart on more slices (raise no counter; absent: 0). */
  scaledUp?: number | undefined;
  /**
   * Of those, how many in a row up to now (absent: 0, as in states written before it). Bounds
   * a job that only ever meets unhealthy slices, which no budget would stop.
   */
  abandonedInARow?: number | undefined;
  /** The first failure (or runtime error): what a spent failure budget surfaces. */
  firstFailure?: { error: SerializedError; kind: "failed" | "error" } | undefined;
  lastPreemption?: SerializedError | undefined;
}

/** A fresh job's counters. */
export const initialRetryState = (): RetryState => ({
  attempts: 0,
  preemptions: 0,
  failures: 0,
  abandoned: 0,
});

/** After this many attempts in a row abandoned on unhealthy slices, the job stops with ERROR. */
export const MAX_UNHEALTHY_IN_A_ROW = 10;

/** The error a job stops with when a bound is reached: `error`, caused by the last problem, short. */
function budgetSpent(error: Error, problem: SerializedError): SerializedError {
  const serialized = serializeError(error);
  delete serialized.stack; // gangway's own frames say nothing to the user
  return shortenError({ ...serialized, cause: problem });
}

/** Budgets as retries: N retries allow N+1 attempts (Levanter's counting). */
export interface RetryBudget {
  maxPreemptions: number;
  maxFailures: number;
}

/** What to do after an attempt. */
export type RetryDecision =
  | { action: "retry"; state: RetryState; reason: ProblemKind }
  | { action: "stop"; status: "SUCCEEDED"; state: RetryState }
  | { action: "stop"; status: "FAILED" | "PREEMPTED" | "ERROR"; state: RetryState; error: SerializedError };

/**
 * Count an attempt's verdict against the budgets and decide: retry, or stop with the ancestors'
 * final status and message ("preempted too many times" / the first failure).
 */
export function decideAfterAttempt(
  previous: RetryState,
  verdict: AttemptVerdict,
  budget: RetryBudget,
): RetryDecision {
  const state: RetryState = { ...previous, attempts: previous.attempts + 1 };
  // Any attempt that is not abandoned breaks the run of unhealthy ones.
  if (verdict.outcome !== "unhealthy") delete state.abandonedInARow;
  // Shortened before it is kept: a workload's error file may be 256 KiB, and the state carries
  // the problem again in every later attempt (MAX_ERROR_BYTES).
  const problem = shortenError(
    verdict.problem ?? { name: "Error", message: `attempt ${state.attempts} ended as ${verdict.outcome}` },
  );
  switch (verdict.outcome) {
    case "succeeded":
      return { action: "stop", status: "SUCCEEDED", state };
    case "scaled":
      state.scaledUp = (previous.scaledUp ?? 0) + 1;
      return { action: "retry", state, reason: "scaled" };
    case "unhealthy": {
      state.abandoned += 1;
      state.abandonedInARow = (previous.abandonedInARow ?? 0) + 1;
      if (state.abandonedInARow < MAX_UNHEALTHY_IN_A_ROW)
        return { action: "retry", state, reason: "unhealthy" };
      const error = new UnhealthyTooManyTimes(
        `abandoned ${state.abandonedInARow} attempts in a row: a slice was unhealthy each time (last: ${problem.message})`,
        { abandonedInARow: state.abandonedInARow, attempts: state.attempts },
      );
      return { action: "stop", status: "ERROR", state, error: budgetSpent(error, problem) };
    }
    case "preempted": {
      state.preemptions += 1;
      state.lastPreemption = problem;
      if (state.preemptions <= budget.maxPreemptions) return { action: "retry", state, reason: "preempted" };
      const error = new PreemptedTooManyTimes(
        `preempted too many times: ${state.preemptions} preemptions with maxPreemptions=${budget.maxPreemptions}`,
        { preemptions: state.preemptions, maxPreemptions: budget.maxPreemptions, attempts: state.attempts },
      );
      return { action: "stop", status: "PREEMPTED", state, error: budgetSpent(error, problem) };
    }
    case "failed":
    case "error": {
      state.failures += 1;
      state.firstFailure ??= { error: problem, kind: verdict.outcome };
      if (!verdict.fatal && state.failures <= budget.maxFailures) {
        return { action: "retry", state, reason: verdict.outcome };
      }
      const surfaced = verdict.fatal ? { error: problem, kind: "error" as const } : state.firstFailure;
      return {
        action: "stop",
        status: surfaced.kind === "error" ? "ERROR" : "FAILED",
        state,
        // A first failure kept by a state written before errors were shortened may be large.
        error: shortenError(surfaced.error),
      };
    }
  }
}
