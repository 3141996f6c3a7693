import { describe, expect, it } from "vitest";
import {
  type AttemptProblem,
  type AttemptVerdict,
  classifyAttempt,
  classifyProblem,
  decideAfterAttempt,
  initialRetryState,
  type ProblemContext,
  type ProblemKind,
  type RetryState,
} from "../../core/classification.js";
import type { SerializedError } from "../../core/serialized-error.js";

const err = (name: string, extra: Partial<SerializedError> = {}): SerializedError => ({
  name,
  message: `${name}!`,
  ...extra,
});
const exited = (exitCode: number) => err("WorkloadFailed", { details: { exitCode } });

// The specification of classifyProblem: [what, error, context, kind]. FACTS.md "Classification".
const PROBLEMS: Array<[string, SerializedError, ProblemContext, ProblemKind]> = [
  ["a preemption notice", err("Preempted"), {}, "preempted"],
  ["an unreachable host", err("HostUnreachable"), {}, "preempted"],
  ["slices that could not be had", err("InsufficientSlices"), {}, "preempted"],
  ["an expired lease", err("LeaseExpired"), {}, "preempted"],
  ["a dead node (Ray)", err("NodeDiedError"), {}, "preempted"],
  ["a dead actor (Ray)", err("ActorDiedError"), {}, "preempted"],
  ["a dead owner (Ray)", err("OwnerDiedError"), {}, "preempted"],
  ["a crashed worker (Ray)", err("WorkerCrashedError"), {}, "preempted"],
  ["a heartbeat timeout", err("States.HeartbeatTimeout"), {}, "preempted"],
  ["a task timeout", err("States.Timeout"), {}, "preempted"],
  ["an attempt over its time", err("AttemptTimedOut"), {}, "preempted"],
  [
    "a task error caused by a timeout",
    err("WorkloadFailed", { cause: err("TimeoutError") }),
    {},
    "preempted",
  ],
  [
    "a task error caused deep down by a lost node",
    err("RayTaskError", { cause: err("X", { cause: err("NodeDiedError") }) }),
    {},
    "preempted",
  ],
  ["a task error while the metadata says preempted", exited(1), { metadataPreempted: true }, "preempted"],
  ["a task error on a healthy host", exited(1), { metadataPreempted: false }, "failed"],
  ["an exit code the job recovers on", exited(42), { retryOnExitCodes: [42] }, "preempted"],
  ["an exit code the job does not recover on", exited(1), { retryOnExitCodes: [42] }, "failed"],
  ["the user's own exception", err("ValueError"), {}, "failed"],
  ["a workload that could not start", err("WorkloadStartFailed"), {}, "failed"],
  ["a result too large", err("ResultTooLarge"), {}, "failed"],
  ["a runtime fault of gangway", err("InternalError"), {}, "error"],
  ["a Ray system error", err("RaySystemError"), {}, "error"],
  [
    "a runtime fault even with a lost node below",
    err("InternalError", { cause: err("NodeDiedError") }),
    {},
    "error",
  ],
  ["an invalid job", err("InvalidJobSpec"), {}, "error"],
  ["an unhealthy slice before the run", err("SliceUnhealthy"), {}, "unhealthy"],
];

describe("classifyProblem", () => {
  it.each(PROBLEMS)("%s → %s", (_what, error, ctx, kind) => {
    expect(classifyProblem(error, ctx)).toBe(kind);
  });
});

const p = (error: SerializedError, ctx: ProblemContext = {}): AttemptProblem => ({ error, ...ctx });

describe("classifyAttempt: one attempt raises at most one counter", () => {
  it.each<[string, AttemptProblem[], AttemptVerdict["outcome"], string | undefined]>([
    ["no problem", [], "succeeded", undefined],
    ["a failure and a preemption", [p(exited(1)), p(err("Preempted"))], "preempted", "Preempted"],
    ["two failures", [p(err("ValueError")), p(exited(3))], "failed", "ValueError"],
    ["a runtime error and a failure", [p(exited(1)), p(err("InternalError"))], "error", "InternalError"],
    [
      "only unhealthy slices",
      [p(err("SliceUnhealthy")), p(err("SliceUnhealthy"))],
      "unhealthy",
      "SliceUnhealthy",
    ],
    [
      "an unhealthy slice and a failure",
      [p(err("SliceUnhealthy")), p(exited(1))],
      "failed",
      "WorkloadFailed",
    ],
  ])("%s → %s", (_what, problems, outcome, problemName) => {
    const verdict = classifyAttempt(problems);
    expect(verdict.outcome).toBe(outcome);
    expect(verdict.problem?.name).toBe(problemName);
    expect(verdict.fatal).toBe(false);
  });

  it("marks an invalid job fatal", () => {
    expect(classifyAttempt([p(err("Preempted")), p(err("InvalidJobSpec"))])).toMatchObject({
      outcome: "error",
      fatal: true,
    });
  });
});

/** Run attempts with the given verdicts through the budget until it stops. */
function run(verdicts: AttemptVerdict["outcome"][], budget = { maxPreemptions: 2, maxFailures: 1 }) {
  let state: RetryState = initialRetryState();
  for (const [i, outcome] of verdicts.entries()) {
    const problem =
      outcome === "succeeded"
        ? undefined
        : err(outcome === "preempted" ? "Preempted" : outcome === "error" ? "InternalError" : `Fail${i + 1}`);
    const decision = decideAfterAttempt(state, { outcome, problem, fatal: false }, budget);
    if (decision.action === "stop") return { decision, calls: i + 1 };
    state = decision.state;
  }
  return { decision: undefined, calls: verdicts.length, state };
}

describe("decideAfterAttempt: budgets are retries (N retries = N+1 attempts)", () => {
  it("scenario 9: preempted until call 4 with 2 preemption retries → preempted too many times", () => {
    const { decision, calls } = run(["preempted", "preempted", "preempted", "succeeded"]);
    expect(calls).toBe(3);
    expect(decision).toMatchObject({
      action: "stop",
      status: "PREEMPTED",
      state: { preemptions: 3, failures: 0, attempts: 3 },
    });
    if (decision?.status !== "PREEMPTED") throw new Error("status");
    expect(decision.error.name).toBe("PreemptedTooManyTimes");
    expect(decision.error.message).toMatch(/^preempted too many times/);
    expect(decision.error.cause?.name).toBe("Preempted");
  });

  it("scenario 9: preempted until call 2 → succeeds", () => {
    const { decision, calls } = run(["preempted", "succeeded"]);
    expect(calls).toBe(2);
    expect(decision).toMatchObject({ status: "SUCCEEDED", state: { preemptions: 1, attempts: 2 } });
  });

  it("scenario 3: fails once then succeeds with one failure retry", () => {
    expect(run(["failed", "succeeded"]).decision).toMatchObject({
      status: "SUCCEEDED",
      state: { failures: 1 },
    });
  });

  it("scenario 8: zero retries surfaces the user's own exception", () => {
    const { decision } = run(["failed"], { maxPreemptions: 0, maxFailures: 0 });
    expect(decision).toMatchObject({ status: "FAILED", error: { name: "Fail1" } });
  });

  it("scenario 10: always failing surfaces the first failure after the failure budget", () => {
    const { decision, calls } = run(["failed", "failed", "failed", "failed"], {
      maxPreemptions: 5,
      maxFailures: 2,
    });
    expect(calls).toBe(3);
    expect(decision).toMatchObject({ status: "FAILED", error: { name: "Fail1" }, state: { failures: 3 } });
  });

  it("keeps the counters apart", () => {
    const { decision } = run(["preempted", "failed", "preempted", "succeeded"], {
      maxPreemptions: 2,
      maxFailures: 1,
    });
    expect(decision).toMatchObject({
      status: "SUCCEEDED",
      state: { preemptions: 2, failures: 1, attempts: 4 },
    });
  });

  it("raises no counter for an attempt abandoned on an unhealthy slice", () => {
    const { decision } = run(["unhealthy", "unhealthy", "succeeded"], { maxPreemptions: 0, maxFailures: 0 });
    expect(decision).toMatchObject({
      status: "SUCCEEDED",
      state: { preemptions: 0, failures: 0, abandoned: 2, attempts: 3 },
    });
  });

  it("surfaces a runtime error as ERROR when it was the first failure", () => {
    expect(run(["error", "failed"], { maxPreemptions: 0, maxFailures: 1 }).decision).toMatchObject({
      status: "ERROR",
      error: { name: "InternalError" },
    });
  });

  it("stops at once on a fatal problem, whatever the budget", () => {
    const d = decideAfterAttempt(
      initialRetryState(),
      { outcome: "error", problem: err("InvalidJobSpec"), fatal: true },
      {
        maxPreemptions: 10,
        maxFailures: 10,
      },
    );
    expect(d).toMatchObject({ action: "stop", status: "ERROR", error: { name: "InvalidJobSpec" } });
  });
});
