import { describe, expect, it } from "vitest";
import { orderResults } from "../../core/results.js";

const r = (sliceIndex: number, hostIndex: number) => ({
  sliceIndex,
  hostIndex,
  result: `s${sliceIndex}h${hostIndex}`,
});

describe("orderResults", () => {
  const shuffled = [r(1, 1), r(0, 1), r(1, 0), r(0, 0)];
  it("returns slice order then host order, flat", () => {
    expect(orderResults(shuffled, true)).toEqual(["s0h0", "s0h1", "s1h0", "s1h1"]);
  });
  it("nests by slice when flatten is false", () => {
    expect(orderResults(shuffled, false)).toEqual([
      ["s0h0", "s0h1"],
      ["s1h0", "s1h1"],
    ]);
    expect(orderResults([r(2, 0)], false)).toEqual([[], [], ["s2h0"]]);
  });
});
