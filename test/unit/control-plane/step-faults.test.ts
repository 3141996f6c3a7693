import { describe, expect, it } from "vitest";
import { fakeWorld } from "./fakes.js";
import { exitEvent, launched } from "./harness.js";

/** No failure retry: whatever ends the first attempt is what the job shows. */
const once = { retry: { maxPreemptions: 5, maxFailures: 0 } };

describe("CheckResults tells a step's fault from the workload's failure", () => {
  it.each([
    ["Lambda.Unknown", "The cause could not be determined because Lambda did not return an error type."],
    ["Lambda.ServiceException", '{"errorMessage":"Lambda is unavailable","errorType":"ServiceException"}'],
    ["States.TaskFailed", "the task failed"],
    [
      "InvalidStepInput",
      '{"errorType":"InvalidStepInput","errorMessage":"launch-hosts: invalid input","trace":[]}',
    ],
    ["StepAnswerNotJson", '{"errorType":"StepAnswerNotJson","errorMessage":"not JSON","trace":[]}'],
    ["TypeError", '{"errorType":"TypeError","errorMessage":"x is undefined","trace":["TypeError: x"]}'],
  ])("%s raised by a step stops the job ERROR, not as the workload's failure", async (name, cause) => {
    const world = fakeWorld();
    const { s, state } = await launched(world, once);
    const checked = await s.check({ ...state, problem: { Error: name, Cause: cause } });
    expect(checked.decision).toMatchObject({ action: "stop", status: "ERROR" });
    // The name the job shows is the one the cause gives, when it gives one (Lambda's `errorType`).
    expect([name, name.replace("Lambda.", "")]).toContain(checked.final?.error);
    expect(JSON.parse(checked.final?.cause ?? "")).toMatchObject({ status: "ERROR" });
  });

  it("while the user's own exception, whatever its name, stays FAILED", async () => {
    for (const name of ["DeliberateFailure", "TypeError"]) {
      const world = fakeWorld();
      const { s, state } = await launched(world, once);
      await s.await({ token: "tok-1", state });
      const userError = { name, message: "boom", stack: "Traceback …" };
      await s.ingest.hostEvent(exitEvent(state, 1, 0, { exitCode: 3, error: userError }));
      const failure = world.sent[0];
      expect(failure).toMatchObject({ kind: "fail", error: name });
      const checked = await s.check({ ...state, problem: { Error: name, Cause: failure?.cause } });
      expect(checked.decision).toMatchObject({ action: "stop", status: "FAILED" });
      expect(JSON.parse(checked.final?.cause ?? "")).toMatchObject({ status: "FAILED", error: { name } });
    }
  });
});
