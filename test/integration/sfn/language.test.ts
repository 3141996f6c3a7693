import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runToEnd, startTestSfn, type TestSfn } from "./helpers.js";

let sfn: TestSfn;
beforeAll(async () => {
  sfn = await startTestSfn({
    lambdas: {
      Fails: () => {
        throw Object.assign(new Error("slice lost"), { name: "Preempted" });
      },
    },
  });
});
afterAll(async () => {
  await sfn.close();
});

const fail = { Type: "Task", Resource: "arn:aws:lambda:us-east-1:123456789012:function:Fails" };

describe("language through the API", () => {
  it("runs Parallel branches and catches a branch's failure by its name", async () => {
    const ok = await runToEnd(
      sfn.client,
      {
        StartAt: "Par",
        States: {
          Par: {
            Type: "Parallel",
            Branches: [
              { StartAt: "A", States: { A: { Type: "Pass", Parameters: { "a.$": "$.x" }, End: true } } },
              { StartAt: "B", States: { B: { Type: "Pass", Result: "b", End: true } } },
            ],
            ResultSelector: { "first.$": "$[0].a", "second.$": "$[1]" },
            ResultPath: "$.par",
            End: true,
          },
        },
      },
      { x: 1 },
    );
    expect(JSON.parse(ok.output as string)).toEqual({ x: 1, par: { first: 1, second: "b" } });
    const caught = await runToEnd(sfn.client, {
      StartAt: "Par",
      States: {
        Par: {
          Type: "Parallel",
          Branches: [{ StartAt: "F", States: { F: { ...fail, End: true } } }],
          Catch: [{ ErrorEquals: ["Preempted"], Next: "Recover" }],
          End: true,
        },
        Recover: { Type: "Pass", End: true },
      },
    });
    expect(caught.status).toBe("SUCCEEDED");
    expect(JSON.parse(caught.output as string).Error).toBe("Preempted");
    expect(caught.history.map((e) => e.type)).toContain("ParallelStateFailed");
  });

  it("retries a Map whose iteration fails, then fails the execution with the iteration's error", async () => {
    const d = await runToEnd(
      sfn.client,
      {
        StartAt: "M",
        States: {
          M: {
            Type: "Map",
            ItemProcessor: { StartAt: "F", States: { F: { ...fail, End: true } } },
            Retry: [{ ErrorEquals: ["States.ALL"], IntervalSeconds: 1, MaxAttempts: 1 }],
            End: true,
          },
        },
      },
      [1],
    );
    expect(d).toMatchObject({ status: "FAILED", error: "Preempted" });
    const types = d.history.map((e) => e.type);
    expect(types.filter((t) => t === "MapStateStarted")).toHaveLength(2);
    expect(types.filter((t) => t === "MapStateFailed")).toHaveLength(1);
  });

  it("times the whole execution out with its TimeoutSeconds", async () => {
    const d = await runToEnd(sfn.client, {
      TimeoutSeconds: 1,
      StartAt: "W",
      States: { W: { Type: "Wait", Seconds: 3600, End: true } },
    });
    expect(d.status).toBe("TIMED_OUT");
    expect(d.history.at(-1)?.type).toBe("ExecutionTimedOut");
  });

  it("answers States.NoChoiceMatched and keeps Assign variables across states", async () => {
    const none = await runToEnd(
      sfn.client,
      {
        StartAt: "C",
        States: { C: { Type: "Choice", Choices: [{ Variable: "$.v", NumericEquals: 1, Next: "C" }] } },
      },
      { v: 2 },
    );
    expect(none).toMatchObject({ status: "FAILED", error: "States.NoChoiceMatched" });
    const vars = await runToEnd(sfn.client, {
      StartAt: "A",
      States: {
        A: { Type: "Pass", Assign: { count: 41 }, Next: "B" },
        B: { Type: "Pass", Parameters: { "next.$": "States.MathAdd($count, 1)" }, End: true },
      },
    });
    expect(JSON.parse(vars.output as string)).toEqual({ next: 42 });
  });
});
