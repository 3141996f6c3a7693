import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { gangwayInProcess } from "../../cli-in-process.js";

const repo = new URL("../../../", import.meta.url).pathname;

const gangway = (...argv: string[]) => gangwayInProcess(argv, { cwd: repo });

function jobFile(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "gangway-plan-"));
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe("gangway plan", () => {
  it("plans the TPU example on two v4-16 slices", async () => {
    const { code, stdout } = await gangway(
      "plan",
      "examples/tpu-multislice/job.yaml",
      "--cluster",
      "v4-16x2",
      "--json",
    );
    expect(code).toBe(0);
    const plan = JSON.parse(stdout);
    expect(plan.slices).toHaveLength(2);
    expect(plan.slices.map((s: { hosts: unknown[] }) => s.hosts.length)).toEqual([2, 2]);
    const hosts = plan.slices.flatMap((s: { hosts: Array<{ env: Record<string, string> }> }) => s.hosts);
    expect(new Set(hosts.map((h: { env: Record<string, string> }) => h.env.MEGASCALE_NUM_SLICES))).toEqual(
      new Set(["2"]),
    );
    expect(
      plan.slices.map((s: { hosts: Array<{ env: Record<string, string> }> }) =>
        s.hosts.map((h) => h.env.EXECUTOR_CALL_INDEX),
      ),
    ).toEqual([
      ["0", "1"],
      ["0", "1"],
    ]);
    expect(
      plan.slices.map(
        (s: { hosts: Array<{ env: Record<string, string> }> }) => s.hosts[0]?.env.MEGASCALE_SLICE_ID,
      ),
    ).toEqual(["0", "1"]);
  });

  it("prints a readable plan with every variable", async () => {
    const { code, stdout } = await gangway(
      "plan",
      "examples/tpu-multislice/job.yaml",
      "--cluster",
      "v4-16x2",
    );
    expect(code).toBe(0);
    expect(stdout).toContain("tpu v4-16 × 2 slices");
    expect(stdout).toContain("MEGASCALE_COORDINATOR_ADDRESS=127.0.1.1:8081");
    expect(stdout.match(/^ {2}host \d/gm)).toHaveLength(4);
  });

  it("plans every example on placeholder hosts", async () => {
    for (const example of ["tpu-multislice", "gpu-multihost", "cpu-hosts"]) {
      const { code, stdout } = await gangway("plan", `examples/${example}/job.yaml`, "--json");
      expect(code).toBe(0);
      expect(JSON.parse(stdout).placeholder).toBe(true);
    }
  });

  it("takes the largest flexible count the cluster holds, else InsufficientSlices", async () => {
    const path = jobFile(
      "flex.yaml",
      "name: flex\naccelerator: {kind: tpu, type: v4-16, slices: [4, 2]}\nworkload: {command: [x]}\n",
    );
    const three = await gangway("plan", path, "--cluster", "v4-16x3", "--json");
    expect(three.code).toBe(0);
    expect(JSON.parse(three.stdout).sliceCount).toEqual({ wanted: [4, 2], available: 3, chosen: 2 });
    const one = await gangway("plan", path, "--cluster", "v4-16x1,v4-8x4");
    expect(one.code).toBe(1);
    expect(one.stderr).toContain(
      "InsufficientSlices: insufficient slices of v4-16: wanted one of [4, 2], available 1",
    );
    const json = await gangway("plan", path, "--cluster", "v4-16x1", "--json");
    expect(JSON.parse(json.stdout).error).toMatchObject({
      name: "InsufficientSlices",
      details: { wanted: [4, 2], available: 1 },
    });
  });

  it.each([
    [
      "YAML syntax",
      "bad.yaml",
      "name: x\naccelerator: [1, 2\nworkload: {}\n",
      ["line 3, column 1: YAML syntax error"],
    ],
    ["JSON syntax", "bad.json", '{"name": "x",}', ["JSON syntax error"]],
    ["duplicate keys", "dup.yaml", "name: a\nname: b\n", ["YAML syntax error: Map keys must be unique"]],
    [
      "wrong types, unknown fields, negative counts and a v4-7",
      "many.yaml",
      "name: 7\naccelerator: {kind: tpu, type: v4-7, slices: -3, colour: red}\nworkload: {command: python3}\n",
      [
        "name: expected string, got integer 7",
        "accelerator.type: expected a valid v4 size",
        "accelerator.slices: expected a number at least 1, got integer -3",
        'accelerator.colour: expected one of the known fields kind, type, slices, preemptible, zone, got unknown field "colour"',
        'workload.command: expected array, got string "python3"',
      ],
    ],
    ["an empty file", "empty.yaml", "", ["(root): expected object, got null"]],
  ])("exits 2 listing every problem for %s, without a stack trace", async (_what, name, text, expected) => {
    const { code, stderr, stdout } = await gangway("plan", jobFile(name, text));
    expect(code).toBe(2);
    expect(stdout).toBe("");
    for (const e of expected) expect(stderr).toContain(e);
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it("reports a missing file and bad usage with exit 2", async () => {
    expect((await gangway("plan", "nope.yaml")).stderr).toContain("nope.yaml: no such file");
    expect((await gangway("plan")).code).toBe(2);
    expect((await gangway("plan", "a", "b")).code).toBe(2);
    expect((await gangway("plan", "examples/cpu-hosts/job.yaml", "--attempt", "0")).code).toBe(2);
    expect((await gangway("plan", "examples/cpu-hosts/job.yaml", "--bogus")).code).toBe(2);
    const badCluster = await gangway("plan", "examples/cpu-hosts/job.yaml", "--cluster", "v4-7x2");
    expect(badCluster.code).toBe(2);
    expect(badCluster.stderr).toContain('cluster entry "v4-7x2"');
  });

  it("has help for the command and the CLI", async () => {
    expect((await gangway("plan", "--help")).stdout).toContain("usage: gangway plan");
    const top = await gangway("--help");
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/plan\s+validate a job spec/);
    expect((await gangway("frobnicate")).code).toBe(2);
  });
});
