import { describe, expect, it } from "vitest";
import { InsufficientSlices, Preempted, WorkloadFailed } from "../../core/errors.js";
import {
  causeChain,
  deserializeError,
  SerializedErrorSchema,
  serializeError,
} from "../../core/serialized-error.js";

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
