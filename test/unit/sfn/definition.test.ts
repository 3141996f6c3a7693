import { describe, expect, it } from "vitest";
import { parseDefinition } from "../../../infra/local/sfn/definition.js";
import { SfnApiError } from "../../../infra/local/sfn/errors.js";

function fault(definition: unknown): string {
  try {
    parseDefinition(typeof definition === "string" ? definition : JSON.stringify(definition));
  } catch (e) {
    expect(e).toBeInstanceOf(SfnApiError);
    expect((e as SfnApiError).name).toBe("InvalidDefinition");
    return (e as Error).message;
  }
  return "valid";
}

const ok = (states: Record<string, unknown>, startAt = Object.keys(states)[0]) => ({
  StartAt: startAt,
  States: states,
});

describe("definition validation", () => {
  it("accepts every state type", () => {
    expect(
      fault(
        ok({
          P: { Type: "Pass", Next: "C" },
          C: { Type: "Choice", Choices: [{ Variable: "$.x", IsPresent: true, Next: "W" }], Default: "F" },
          W: { Type: "Wait", SecondsPath: "$.s", Next: "T" },
          T: {
            Type: "Task",
            Resource: "arn:aws:states:::lambda:invoke",
            Parameters: { FunctionName: "f" },
            Next: "Par",
          },
          Par: { Type: "Parallel", Branches: [ok({ B: { Type: "Succeed" } })], Next: "M" },
          M: { Type: "Map", ItemProcessor: ok({ I: { Type: "Pass", End: true } }), Next: "S" },
          S: { Type: "Succeed" },
          F: { Type: "Fail", Error: "E" },
        }),
      ),
    ).toBe("valid");
  });

  it("points at the fault", () => {
    expect(fault("{")).toContain("INVALID_JSON_DESCRIPTION");
    expect(fault({ States: {} })).toContain("StartAt");
    expect(fault(ok({ A: { Type: "Pass", Next: "B" } }))).toContain(
      "Missing 'Next' target: B at /States/A/Next",
    );
    expect(fault(ok({ A: { Type: "Pass" } }))).toContain("'Next' or 'End'");
    expect(fault(ok({ A: { Type: "Pass", End: true }, B: { Type: "Pass", End: true } }))).toContain(
      '"B" is not reachable',
    );
    expect(fault(ok({ A: { Type: "Wait", End: true } }))).toContain("Exactly one of Seconds");
    expect(fault(ok({ A: { Type: "Task", End: true } }))).toContain("Resource");
    expect(
      fault(ok({ A: { Type: "Task", Resource: "r", TimeoutSeconds: 5, HeartbeatSeconds: 5, End: true } })),
    ).toContain("HeartbeatSeconds");
    expect(fault(ok({ A: { Type: "Pass", ResultPath: "$.a[*]", End: true } }))).toContain(
      "/States/A/ResultPath",
    );
    expect(
      fault(
        ok({
          A: {
            Type: "Choice",
            Choices: [{ Variable: "$.x", StringEquals: "a", NumericEquals: 1, Next: "A" }],
          },
        }),
      ),
    ).toContain("exactly one comparison operator");
    expect(
      fault(ok({ A: { Type: "Pass", Retry: [{ ErrorEquals: ["States.ALL", "X"] }], End: true } })),
    ).toContain("States.ALL");
    expect(
      fault(ok({ A: { Type: "Map", ItemProcessor: ok({ I: { Type: "Pass", Next: "Out" } }), End: true } })),
    ).toContain("/States/A/ItemProcessor/States/I/Next");
    expect(fault({ ...ok({ A: { Type: "Pass", End: true } }), QueryLanguage: "Python" })).toContain(
      "QueryLanguage",
    );
    expect(
      fault({ ...ok({ A: { Type: "Task", Resource: "r", End: true } }), QueryLanguage: "JSONata" }),
    ).toContain("JSONata Task");
    expect(
      fault({ ...ok({ A: { Type: "Pass", InputPath: "$", End: true } }), QueryLanguage: "JSONata" }),
    ).toContain("'InputPath' is not supported with the JSONata");
    expect(
      fault({
        ...ok({ A: { Type: "Pass", Output: "{% $states.input %}", End: true } }),
        QueryLanguage: "JSONata",
      }),
    ).toBe("valid");
  });
});
