import { describe, expect, it } from "vitest";
import { StatesError } from "../../../infra/local/sfn/errors.js";
import { evaluateIntrinsic, parseIntrinsic } from "../../../infra/local/sfn/intrinsics.js";

const vars: Record<string, unknown> = {
  "$.arr": [1, 2, 3, 2],
  "$.obj": { a: 1 },
  "$.s": "a,b;c",
  "$.n": 5,
};
const ev = (text: string) =>
  evaluateIntrinsic(text, (p) => {
    if (!(p in vars)) throw new Error(`unknown ${p}`);
    return vars[p];
  });

function failsWith(text: string): string {
  try {
    ev(text);
  } catch (e) {
    return (e as StatesError).name;
  }
  return "no error";
}

describe("States.* intrinsic functions", () => {
  it("formats, with escapes and AWS's rendering of objects", () => {
    expect(ev("States.Format('{} + {} = {}', 1, $.n, 'six')")).toBe("1 + 5 = six");
    expect(ev("States.Format('literal \\{\\} and {}', $.obj)")).toBe("literal {} and {a=1}");
    expect(ev("States.Format('it\\'s {}', true)")).toBe("it's true");
    expect(failsWith("States.Format('{} {}', 1)")).toBe("States.IntrinsicFailure");
  });

  it("converts JSON and strings", () => {
    expect(ev("States.StringToJson('{\"a\":[1]}')")).toEqual({ a: [1] });
    expect(ev("States.JsonToString($.obj)")).toBe('{"a":1}');
    expect(ev("States.StringSplit($.s, ',;')")).toEqual(["a", "b", "c"]);
    expect(ev("States.Base64Encode('hi there')")).toBe("aGkgdGhlcmU=");
    expect(ev("States.Base64Decode('aGkgdGhlcmU=')")).toBe("hi there");
    expect(ev("States.Hash('abc', 'SHA-256')")).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    expect(failsWith("States.StringToJson('{oops')")).toBe("States.IntrinsicFailure");
    expect(failsWith("States.Hash('abc', 'CRC32')")).toBe("States.IntrinsicFailure");
  });

  it("builds and inspects arrays", () => {
    expect(ev("States.Array(1, 'two', States.Array(3))")).toEqual([1, "two", [3]]);
    expect(ev("States.ArrayPartition($.arr, 3)")).toEqual([[1, 2, 3], [2]]);
    expect(ev("States.ArrayContains($.arr, 3)")).toBe(true);
    expect(ev("States.ArrayRange(1, 9, 3)")).toEqual([1, 4, 7]);
    expect(ev("States.ArrayGetItem($.arr, 2)")).toBe(3);
    expect(ev("States.ArrayLength($.arr)")).toBe(4);
    expect(ev("States.ArrayUnique($.arr)")).toEqual([1, 2, 3]);
    expect(failsWith("States.ArrayGetItem($.arr, 10)")).toBe("States.IntrinsicFailure");
    expect(failsWith("States.ArrayRange(1, 5000, 1)")).toBe("States.IntrinsicFailure");
  });

  it("does math and the rest", () => {
    expect(ev("States.MathAdd($.n, -7)")).toBe(-2);
    expect(ev("States.MathAdd(1.5, 0)")).toBe(2);
    const r = ev("States.MathRandom(1, 10)") as number;
    expect(Number.isInteger(r) && r >= 1 && r < 10).toBe(true);
    expect(ev("States.MathRandom(1, 1000, 7)")).toBe(ev("States.MathRandom(1, 1000, 7)"));
    expect(ev("States.JsonMerge($.obj, States.StringToJson('{\"b\":2}'), false)")).toEqual({ a: 1, b: 2 });
    expect(ev("States.UUID()")).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });

  it("refuses syntax errors and unknown functions", () => {
    expect(() => parseIntrinsic("States.Nope(1)")).toThrow(StatesError);
    expect(() => parseIntrinsic("States.Format('x'")).toThrow(StatesError);
    expect(() => parseIntrinsic("States.Format('x') trailing")).toThrow(StatesError);
  });
});
