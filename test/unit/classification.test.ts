import { describe, expect, it } from "vitest";
import {
  type AttemptProblem,
  type AttemptVerdict,
  classifyAttempt,
  classifyProblem,
  decideAfterAttempt,
  initialRetryState,
  MAX_UNHEALTHY_IN_A_ROW,
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
/** The user's own exception as a host reports it: ingest stamps the host's exit on it. */
const own = (name: string, exitCode: number | null = 1) => err(name, { details: { exitCode, slice: "s-0" } });

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
  ["the user's own exception", own("ValueError"), {}, "failed"],
  ["the user's own exception named as a JavaScript error", own("TypeError"), {}, "failed"],
  ["the user's own exception on a host killed by a signal", own("DeliberateFailure", null), {}, "failed"],
  // Unknown names a step of gangway raised (no host's exit on them): its fault, not the workload's.
  ["a Lambda service fault", err("Lambda.Unknown"), {}, "error"],
  ["a Lambda service exception", err("Lambda.ServiceException"), {}, "error"],
  ["a task failure Step Functions names", err("States.TaskFailed"), {}, "error"],
  ["a step given input it cannot read", err("InvalidStepInput"), {}, "error"],
  ["a step answering text that is not JSON", err("StepAnswerNotJson"), {}, "error"],
  ["a bug in a step", err("TypeError"), {}, "error"],
  ["a plain Error from a step", err("Error"), {}, "error"],
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
  ["an attempt ended to grow onto more slices", err("ScaleUp"), {}, "scaled"],
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
    ["two failures", [p(own("ValueError")), p(exited(3))], "failed", "ValueError"],
    ["a step's fault and a failure", [p(exited(1)), p(err("Lambda.Unknown"))], "error", "Lambda.Unknown"],
    ["a runtime error and a failure", [p(exited(1)), p(err("InternalError"))], "error", "InternalError"],
    [
      "only unhealthy slices",
      [p(err("SliceUnhealthy")), p(err("SliceUnhealthy"))],
      "unhealthy",
      "SliceUnhealthy",
    ],
    ["a scale-up and a host's failure", [p(err("ScaleUp")), p(exited(1))], "failed", "WorkloadFailed"],
    ["a scale-up and a preemption", [p(err("ScaleUp")), p(err("Preempted"))], "preempted", "Preempted"],
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

  it("raises no counter for an attempt ended to grow onto more slices, even with no budget left", () => {
    const { decision } = run(["scaled", "preempted", "scaled", "succeeded"], {
      maxPreemptions: 1,
      maxFailures: 0,
    });
    expect(decision).toMatchObject({
      status: "SUCCEEDED",
      state: { preemptions: 1, failures: 0, scaledUp: 2, attempts: 4 },
    });
  });

  it(`stops with ERROR after ${MAX_UNHEALTHY_IN_A_ROW} attempts in a row abandoned on unhealthy slices`, () => {
    let state = initialRetryState();
    const unhealthy = { outcome: "unhealthy" as const, problem: err("SliceUnhealthy"), fatal: false };
    const budget = { maxPreemptions: 1_000_000, maxFailures: 10 };
    for (let i = 1; i < MAX_UNHEALTHY_IN_A_ROW; i++) {
      const d = decideAfterAttempt(state, unhealthy, budget);
      if (d.action !== "retry") throw new Error(`stopped after ${i}`);
      state = d.state;
    }
    expect(decideAfterAttempt(state, unhealthy, budget)).toMatchObject({
      action: "stop",
      status: "ERROR",
      state: { abandoned: MAX_UNHEALTHY_IN_A_ROW, abandonedInARow: MAX_UNHEALTHY_IN_A_ROW, failures: 0 },
      error: {
        name: "UnhealthyTooManyTimes",
        message: expect.stringMatching(/^abandoned 10 attempts in a row/),
        cause: { name: "SliceUnhealthy" },
      },
    });
  });

  it("counts only abandoned attempts in a row: any other attempt starts again, an old state from 0", () => {
    const ninth = Array<AttemptVerdict["outcome"]>(MAX_UNHEALTHY_IN_A_ROW - 1).fill("unhealthy");
    const { decision } = run([...ninth, "preempted", ...ninth, "succeeded"]);
    expect(decision).toMatchObject({ status: "SUCCEEDED", state: { abandoned: 18, preemptions: 1 } });
    expect(decision?.state.abandonedInARow).toBeUndefined();
    // A state written before the count (none) goes on from 0.
    const { abandonedInARow: _, ...old } = { ...initialRetryState(), abandoned: 30, abandonedInARow: 0 };
    const d = decideAfterAttempt(
      old,
      { outcome: "unhealthy", fatal: false },
      { maxPreemptions: 0, maxFailures: 0 },
    );
    expect(d).toMatchObject({ action: "retry", state: { abandoned: 31, abandonedInARow: 1 } });
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
