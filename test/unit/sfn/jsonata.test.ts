import { describe, expect, it } from "vitest";
import type { StatesError } from "../../../infra/local/sfn/errors.js";
import { expressionOf, JsonataScope } from "../../../infra/local/sfn/jsonata.js";

const scope = () => new JsonataScope("S", 2, { input: { a: 2, list: [1, 2, 3, 4, 5] } }, { v: 10 });

async function failure(p: Promise<unknown>): Promise<StatesError> {
  try {
    await p;
  } catch (e) {
    return e as StatesError;
  }
  throw new Error("expected a failure");
}

describe("JSONata expressions", () => {
  it("recognizes {% %} strings only", () => {
    expect(expressionOf("{% 1 + 1 %}")).toBe("1 + 1");
    expect(expressionOf(" {%$x%} ")).toBe("$x");
    expect(expressionOf("plain")).toBeUndefined();
    expect(expressionOf(42)).toBeUndefined();
  });

  it("evaluates fields with $states and variables, leaving literals alone", async () => {
    const s = scope();
    expect(
      await s.value({ sum: "{% $states.input.a + $v %}", lit: "text", n: [1, "{% $v * 2 %}"] }, "Output"),
    ).toEqual({
      sum: 12,
      lit: "text",
      n: [1, 20],
    });
    expect(await s.assign({ w: "{% $v + 1 %}" })).toEqual({ v: 10, w: 11 });
  });

  it("provides AWS's functions", async () => {
    const s = scope();
    expect(await s.expression("$partition($states.input.list, 2)", "Output")).toEqual([[1, 2], [3, 4], [5]]);
    expect(await s.expression("$range(0, 6, 3)", "Output")).toEqual([0, 3, 6]);
    expect(await s.expression("$hash('abc', 'MD5')", "Output")).toBe("900150983cd24fb0d6963f7d28e17f72");
    expect(await s.expression("$parse('{\"k\":[1]}')", "Output")).toEqual({ k: [1] });
    expect(await s.expression("$uuid()", "Output")).toMatch(/^[0-9a-f-]{36}$/);
    expect(await s.expression("$random(7)", "Output")).toBe(await s.expression("$random(7)", "Output"));
  });

  it("fails with States.QueryEvaluationError naming the expression and the field", async () => {
    const e = await failure(scope().value({ r: "{% $nothing %}" }, "Output"));
    expect(e.name).toBe("States.QueryEvaluationError");
    expect(e.cause).toBe(
      "An error occurred while executing the state 'S' (entered at the event id #2). The JSONata expression '$nothing' specified for the field 'Output/r' returned nothing (undefined).",
    );
    expect((await failure(scope().expression("$fn := function($x){$x}", "Items"))).cause).toContain(
      "unsupported result type",
    );
    expect((await failure(scope().expression("1 +", "Output"))).name).toBe("States.QueryEvaluationError");
  });
});
