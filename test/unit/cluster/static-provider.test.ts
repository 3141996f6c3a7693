import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createStaticProvider, parseInventory } from "../../../infra/local/cluster/static-provider.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gangway-inventory-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const yaml = `
slices:
  - name: pod-a
    type: v4-16
    zone: us-central2-b
    hosts:
      - { address: 10.0.0.2, workerId: 0, agent: "10.0.0.2:7070" }
      - { address: 10.0.0.3, workerId: 1, agent: "10.0.0.3:7070" }
  - name: cpus
    kind: cpu
    type: cpu
    hosts:
      - { address: 10.0.1.2, workerId: 0, agent: "10.0.1.2:7070" }
`;

describe("static provider", () => {
  it("reads a YAML (or JSON) inventory into cluster slices", async () => {
    const file = join(dir, "inventory.yaml");
    writeFileSync(file, yaml);
    const provider = await createStaticProvider({ inventoryFile: file });
    const slices = provider.listSlices();
    expect(slices.map((s) => [s.name, s.kind, s.type, s.hosts.length])).toEqual([
      ["pod-a", "tpu", "v4-16", 2],
      ["cpus", "cpu", "cpu", 1],
    ]);
    expect(slices[0]?.hosts[1]).toEqual({ address: "10.0.0.3", workerId: 1, agent: "10.0.0.3:7070" });
    // It cannot scale, and never deletes real machines.
    expect(await provider.requestSlices("v4-16", 2)).toEqual([]);
    expect(await provider.releaseSlices(["pod-a"])).toEqual([]);
    expect(provider.listSlices()).toHaveLength(2);
    expect(parseInventory(JSON.stringify({ slices: [] }))).toEqual([]);
  });

  it("names every problem of a bad inventory", () => {
    expect(() =>
      parseInventory("slices: [{ name: a, type: v4-8, hosts: [{ address: x, workerId: -1 }] }]"),
    ).toThrow(/slices\[0\]\.hosts\[0\]\.workerId.*slices\[0\]\.hosts\[0\]\.agent/s);
    expect(() => parseInventory("slices: [{ name: a, type: v4-8, hosts: [], extra: 1 }]")).toThrow(/extra/);
    const dup = {
      slices: [
        { name: "a", type: "v4-8", hosts: [{ address: "x", workerId: 0, agent: "x:1" }] },
        { name: "a", type: "v4-8", hosts: [{ address: "y", workerId: 0, agent: "y:1" }] },
      ],
    };
    expect(() => parseInventory(JSON.stringify(dup))).toThrow(/appears twice/);
    expect(() => parseInventory("{ not: [yaml")).toThrow(/InvalidInventory|not JSON or YAML/);
  });

  it("says which file is missing", async () => {
    await expect(createStaticProvider({ inventoryFile: join(dir, "none.yaml") })).rejects.toThrow(
      /none\.yaml/,
    );
  });
});
