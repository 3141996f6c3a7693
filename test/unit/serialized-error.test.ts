import { describe, expect, it } from "vitest";
import { InsufficientSlices, Preempted, WorkloadFailed } from "../../core/errors.js";
import {
  causeChain,
  deserializeError,
  jsonBytes,
  MAX_ERROR_BYTES,
  type SerializedError,
  SerializedErrorSchema,
  serializeError,
  shortenError,
} from "../../core/serialized-error.js";
import { errorCause } from "../../functions/resolution.js";

describe("SerializedError", () => {
  it("keeps name, message, stack, details and the whole cause chain through JSON", () => {
    const root = new TypeError("bad shape");
    const middle = new WorkloadFailed("exit 1", { exitCode: 1, slice: "v4-16-0" }, { cause: root });
    const top = new Preempted("slice v4-16-1 preempted", { slice: "v4-16-1" }, { cause: middle });
    const wire = JSON.parse(JSON.stringify(serializeError(top)));
    expect(SerializedErrorSchema.safeParse(wire).success).toBe(true);
    expect(causeChain(wire).map((e) => e.name)).toEqual(["Preempted", "WorkloadFailed", "TypeError"]);
    expect(wire.cause.details).toEqual({ exitCode: 1, slice: "v4-16-0" });
    expect(wire.stack).toContain("slice v4-16-1 preempted");

    const back = deserializeError(wire);
    expect(back).toBeInstanceOf(Preempted);
    expect(back.message).toBe("slice v4-16-1 preempted");
    expect(back.stack).toBe(top.stack);
    expect(back.cause).toBeInstanceOf(WorkloadFailed);
    expect((back.cause as Error).cause).toBeInstanceOf(Error);
    expect(((back.cause as Error).cause as Error).name).toBe("TypeError");
    expect(serializeError(back)).toEqual(wire);
  });

  it("rebuilds registered classes with their details", () => {
    const back = deserializeError(serializeError(new InsufficientSlices([4, 2], 1, "v4-16")));
    expect(back).toBeInstanceOf(InsufficientSlices);
    expect((back as InsufficientSlices).details).toEqual({
      wanted: [4, 2],
      available: 1,
      acceleratorType: "v4-16",
      unit: "slices",
    });
  });

  it("cuts cycles and overly deep chains instead of looping", () => {
    const a = new Error("a");
    const b = new Error("b", { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(causeChain(serializeError(a)).map((e) => e.name)).toEqual(["Error", "Error", "CauseCycle"]);
    let deep: Error = new Error("0");
    for (let i = 1; i < 100; i++) deep = new Error(String(i), { cause: deep });
    const chain = causeChain(serializeError(deep));
    expect(chain.length).toBeLessThanOrEqual(32);
    expect(chain.at(-1)?.name).toBe("CauseChainCut");
  });

  it("serializes aggregate errors and things that are not errors", () => {
    const agg = serializeError(new AggregateError([new Error("x"), "y"], "two"));
    expect(agg.errors?.map((e) => e.message)).toEqual(["x", "y"]);
    expect(serializeError("plain")).toEqual({ name: "Error", message: "plain" });
    expect(serializeError({ code: 7 })).toEqual({ name: "NonErrorThrown", message: '{"code":7}' });
    expect(serializeError(undefined)).toEqual({ name: "NonErrorThrown", message: "undefined" });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(serializeError(cyclic).name).toBe("NonErrorThrown");
  });

  it("rejects malformed serialized errors", () => {
    expect(SerializedErrorSchema.safeParse({ name: "", message: "x" }).success).toBe(false);
    expect(SerializedErrorSchema.safeParse({ name: "X", message: "x", cause: { name: 3 } }).success).toBe(
      false,
    );
  });
});

describe("shortenError", () => {
  it("leaves an error that fits as it is", () => {
    const small: SerializedError = { name: "ValueError", message: "bad", details: { exitCode: 1 } };
    expect(shortenError(small)).toBe(small);
  });

  it("keeps the facts gangway decides by before the user's own many details", () => {
    const many = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`metric_${i}`, i * 1.5]));
    const error: SerializedError = {
      name: "ValueError",
      message: "m".repeat(20_000),
      details: { ...many, exitCode: 1, signal: null, slice: "v4-16-1", host: 0 },
    };
    const short = shortenError(error);
    expect(jsonBytes(short)).toBeLessThanOrEqual(MAX_ERROR_BYTES);
    expect(short.details).toMatchObject({ exitCode: 1, signal: null, slice: "v4-16-1", host: 0 });
  });

  it("keeps the name, the start of the message and the small facts of a huge error", () => {
    const huge: SerializedError = {
      name: "ValueError",
      message: `loss went NaN: ${"m".repeat(200_000)}`,
      stack: "  at f (x.py:1)\n".repeat(10_000),
      details: { blob: "b".repeat(50_000), nested: { big: "n".repeat(50_000) }, exitCode: 3, signal: null },
      cause: { name: "FloatingPointError", message: "f".repeat(50_000) },
    };
    const short = shortenError(huge);
    expect(jsonBytes(short)).toBeLessThanOrEqual(MAX_ERROR_BYTES);
    expect(short.name).toBe("ValueError");
    expect(short.message.startsWith("loss went NaN: mmm")).toBe(true);
    expect(short.message).toMatch(/more characters cut\]$/);
    expect(short.details).toMatchObject({ exitCode: 3, signal: null });
    expect(short.cause?.name).toBe("FloatingPointError");
    expect(SerializedErrorSchema.safeParse(short).success).toBe(true);
  });

  it("bounds deep chains, wide aggregates, many-byte text and escaped characters", () => {
    let deep: SerializedError = { name: "Root", message: "r".repeat(5_000) };
    for (let i = 0; i < 100; i++) deep = { name: `E${i}`, message: "€".repeat(3_000), cause: deep };
    const wide: SerializedError = {
      name: "AggregateError",
      message: "many",
      errors: Array.from({ length: 1_000 }, (_, i) => ({ name: `E${i}`, message: "\u0001".repeat(2_000) })),
    };
    const keys: SerializedError = {
      name: "N".repeat(10_000),
      message: "😀".repeat(10_000),
      details: Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`k${i}`, i])),
    };
    for (const error of [deep, wide, keys]) {
      const short = shortenError(error);
      expect(jsonBytes(short)).toBeLessThanOrEqual(MAX_ERROR_BYTES);
      // No half of a surrogate pair is left at a cut.
      expect(short.message).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
    }
    expect(shortenError(deep).cause?.name).toBe("E98");
    // Wherever the cut falls among characters of two code units, none is split.
    for (let k = 0; k < 8; k++) {
      const short = shortenError({ name: "E", message: `${"a".repeat(k)}${"😀".repeat(5_000)}` }, 2048 + k);
      expect(short.message).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
    }
  });

  it("is what a task failure's cause carries, within Step Functions' 32,768 characters", () => {
    const cause = errorCause({
      name: "ValueError",
      message: "x".repeat(300_000),
      stack: "y".repeat(300_000),
    });
    expect(cause.length).toBeLessThanOrEqual(32_768);
    expect(Buffer.byteLength(cause)).toBeLessThanOrEqual(MAX_ERROR_BYTES);
    expect(JSON.parse(cause)).toMatchObject({ name: "ValueError" });
  });
});
