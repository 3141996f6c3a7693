import { describe, expect, it } from "vitest";
import { tpuType } from "../../core/tpu-catalog.js";

describe("skeleton", () => {
  it("loads the core", () => {
    expect(tpuType("v4-16").hosts).toBe(2);
  });
});
