import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createStaticProvider,
  parseInventory,
  staticProviderPort,
} from "../../../infra/local/cluster/static-provider.js";

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

  it("as the control plane's port, says once per type what it cannot add, again when the count changes", async () => {
    const file = join(dir, "inventory.yaml");
    writeFileSync(file, yaml);
    const lines: string[] = [];
    const port = staticProviderPort(await createStaticProvider({ inventoryFile: file }), (l) =>
      lines.push(l),
    );
    // A healthy [4,2] job on 2 slices asks for 2 more on every attempt.
    for (let i = 0; i < 5; i++) await port.requestSlices("v4-16", 2);
    expect(lines).toEqual(["static inventory: 2 more v4-16 slice(s) wanted; an inventory cannot grow"]);
    await port.requestSlices("v4-16", 1);
    await port.requestSlices("v4-16", 1);
    await port.requestSlices("cpu", 3);
    expect(lines.slice(1)).toEqual([
      "static inventory: 1 more v4-16 slice(s) wanted; an inventory cannot grow",
      "static inventory: 3 more cpu slice(s) wanted; an inventory cannot grow",
    ]);
  });

  it("says which file is missing", async () => {
    await expect(createStaticProvider({ inventoryFile: join(dir, "none.yaml") })).rejects.toThrow(
      /none\.yaml/,
    );
  });
});
