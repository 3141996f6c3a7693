import { describe, expect, it } from "vitest";
import { evaluateRule, parseTimestamp } from "../../../infra/local/sfn/choice.js";
import type { EvalScope } from "../../../infra/local/sfn/payload.js";

const scope: EvalScope = { stateName: "C", enteredEventId: 2, context: {}, variables: { limit: 10 } };
const input = { s: "abc", n: 5, b: true, t: "2024-03-01T10:00:00Z", z: null, other: 7 };
const rule = (r: Record<string, unknown>) => evaluateRule(r, input, scope);

describe("Choice rules", () => {
  it("compares strings, numbers, booleans and timestamps, literally and by path", () => {
    expect(rule({ Variable: "$.s", StringEquals: "abc" })).toBe(true);
    expect(rule({ Variable: "$.s", StringLessThan: "abd" })).toBe(true);
    expect(rule({ Variable: "$.s", StringGreaterThanEquals: "abc" })).toBe(true);
    expect(rule({ Variable: "$.s", StringMatches: "a*c" })).toBe(true);
    expect(rule({ Variable: "$.s", StringMatches: "a\\*c" })).toBe(false);
    expect(rule({ Variable: "$.n", NumericEquals: 5 })).toBe(true);
    expect(rule({ Variable: "$.n", NumericLessThanPath: "$.other" })).toBe(true);
    expect(rule({ Variable: "$.n", NumericGreaterThanEqualsPath: "$limit" })).toBe(false);
    expect(rule({ Variable: "$.b", BooleanEquals: true })).toBe(true);
    expect(rule({ Variable: "$.t", TimestampGreaterThan: "2024-02-29T23:59:59Z" })).toBe(true);
    expect(rule({ Variable: "$.t", TimestampEquals: "2024-03-01T11:00:00+01:00" })).toBe(true);
  });

  it("answers false on a type mismatch rather than failing", () => {
    expect(rule({ Variable: "$.s", NumericEquals: 5 })).toBe(false);
    expect(rule({ Variable: "$.n", StringEquals: "5" })).toBe(false);
  });

  it("tests types and presence, and combines with And / Or / Not", () => {
    expect(rule({ Variable: "$.z", IsNull: true })).toBe(true);
    expect(rule({ Variable: "$.missing", IsPresent: false })).toBe(true);
    expect(rule({ Variable: "$.n", IsNumeric: true })).toBe(true);
    expect(rule({ Variable: "$.s", IsString: true })).toBe(true);
    expect(rule({ Variable: "$.b", IsBoolean: true })).toBe(true);
    expect(rule({ Variable: "$.t", IsTimestamp: true })).toBe(true);
    expect(
      rule({
        And: [{ Variable: "$.n", NumericGreaterThan: 1 }, { Not: { Variable: "$.s", StringEquals: "x" } }],
      }),
    ).toBe(true);
    expect(
      rule({
        Or: [
          { Variable: "$.n", NumericEquals: 1 },
          { Variable: "$.b", BooleanEquals: false },
        ],
      }),
    ).toBe(false);
  });

  it("fails with States.Runtime when the variable does not exist", () => {
    expect(() => rule({ Variable: "$.missing", StringEquals: "x" })).toThrow(/Invalid path '\$\.missing'/);
  });

  it("parses only ISO-8601 date-times with an offset", () => {
    expect(parseTimestamp("2016-03-14T01:59:00Z")).toBe(Date.UTC(2016, 2, 14, 1, 59, 0));
    for (const bad of [
      "2016-03-14 01:59:00Z",
      "2016-03-14T01:59:00",
      "2016-13-01T00:00:00Z",
      "2016-02-30T00:00:00Z",
    ])
      expect(parseTimestamp(bad), bad).toBeUndefined();
  });
});
