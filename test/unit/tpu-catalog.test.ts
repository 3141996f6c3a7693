import { describe, expect, it } from "vitest";
import { UnknownAcceleratorType } from "../../core/errors.js";
import { allTpuTypes, describeTpuCatalog, isTpuType, TPU_FAMILIES, tpuType } from "../../core/tpu-catalog.js";

// [type, chips, hosts, chipsPerHost] — FACTS.md's table, at every boundary of every family.
const VALID: Array<[string, number, number, number]> = [
  ["v4-8", 4, 1, 4],
  ["v4-16", 8, 2, 4],
  ["v4-32", 16, 4, 4],
  ["v4-2048", 1024, 256, 4],
  ["v4-4096", 2048, 512, 4],
  ["v5p-8", 4, 1, 4],
  ["v5p-16", 8, 2, 4],
  ["v5p-8192", 4096, 1024, 4],
  ["v5p-12288", 6144, 1536, 4],
  ["v5litepod-1", 1, 1, 1],
  ["v5litepod-2", 2, 1, 2],
  ["v5litepod-4", 4, 1, 4],
  ["v5litepod-8", 8, 1, 8],
  ["v5litepod-16", 16, 4, 4],
  ["v5litepod-32", 32, 8, 4],
  ["v5litepod-256", 256, 64, 4],
  ["v6e-1", 1, 1, 1],
  ["v6e-4", 4, 1, 4],
  // Known trouble in the field: v6e-8 seen as 4 chips. It has 8, on one host.
  ["v6e-8", 8, 1, 8],
  ["v6e-16", 16, 4, 4],
  ["v6e-256", 256, 64, 4],
];

const INVALID: Array<[string, RegExp]> = [
  ["v4-7", /valid v4 size/],
  ["v4-4", /valid v4 size/],
  ["v4-8192", /valid v4 size/],
  ["v4-24", /valid v4 size/],
  ["v4-008", /valid v4 size/],
  ["v5p-4", /valid v5p size/],
  ["v5p-16384", /valid v5p size/],
  ["v5p-12289", /valid v5p size/],
  ["v5litepod-3", /valid v5litepod size/],
  ["v5litepod-512", /valid v5litepod size/],
  ["v5litepod-12", /valid v5litepod size/],
  ["v6e-2", /valid v6e size/],
  ["v6e-512", /valid v6e size/],
  ["v5e-16", /v5e slices are named v5litepod-N/],
  ["v3-8", /unknown TPU family "v3"/],
  ["tpu", /malformed TPU type/],
  ["v4_8", /malformed TPU type/],
  ["", /malformed TPU type/],
  ["V4-8", /malformed TPU type/],
];

describe("TPU catalog", () => {
  it.each(VALID)("%s has %i chips on %i hosts (%i per host)", (name, chips, hosts, perHost) => {
    const t = tpuType(name);
    expect({ chips: t.chips, hosts: t.hosts, chipsPerHost: t.chipsPerHost }).toEqual({
      chips,
      hosts,
      chipsPerHost: perHost,
    });
    expect(t.headResource).toBe(`TPU-${name}-head`);
    expect(isTpuType(name)).toBe(true);
  });

  it.each(INVALID)("rejects %s", (name, message) => {
    expect(isTpuType(name)).toBe(false);
    expect(() => tpuType(name)).toThrow(UnknownAcceleratorType);
    expect(() => tpuType(name)).toThrow(message);
  });

  it("names every family and its sizes when the family is unknown", () => {
    const error = (() => {
      try {
        tpuType("v9-8");
      } catch (e) {
        return e as Error;
      }
      throw new Error("no error");
    })();
    for (const family of TPU_FAMILIES) expect(error.message).toContain(family);
    expect(error.message).toContain("v4-4096");
    expect(error.message).toContain("v5p-12288");
    expect(error.name).toBe("UnknownAcceleratorType");
  });

  it("lists every family with consistent shapes", () => {
    const all = allTpuTypes();
    expect(new Set(all.map((t) => t.family))).toEqual(new Set(TPU_FAMILIES));
    expect(all.filter((t) => t.family === "v4").map((t) => t.size)).toEqual([
      8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096,
    ]);
    expect(all.filter((t) => t.family === "v5p")).toHaveLength(12);
    expect(all.filter((t) => t.family === "v5litepod").map((t) => t.size)).toEqual([
      1, 2, 4, 8, 16, 32, 64, 128, 256,
    ]);
    expect(all.filter((t) => t.family === "v6e").map((t) => t.size)).toEqual([1, 4, 8, 16, 32, 64, 128, 256]);
    for (const t of all) {
      expect(t.chips).toBe(t.hosts * t.chipsPerHost);
      expect(Number.isInteger(t.hosts) && t.hosts >= 1).toBe(true);
    }
    expect(describeTpuCatalog()).toMatch(/v4.*v5p.*v5litepod.*v6e/);
  });
});
