import { describe, expect, it } from "vitest";
import { layoutLocalCluster, loopbackAddress, parseClusterSpec } from "../../core/cluster-spec.js";
import { InsufficientSlices, SliceUnhealthy, UnknownAcceleratorType } from "../../core/errors.js";
import { parseJobSpec } from "../../core/job-spec.js";
import { chooseSliceCount, placeholderCluster, placeJob, selectSlices } from "../../core/placement.js";

const job = (slices: number | number[], type = "v4-16") =>
  parseJobSpec({ name: "j", accelerator: { kind: "tpu", type, slices }, workload: { command: ["x"] } });

describe("slice count", () => {
  it.each([
    [[4], 4, 4],
    [[4], 9, 4],
    [[4, 2], 3, 2],
    [[2, 4], 5, 4],
    [[8, 4, 2], 7, 4],
    [[1, 2], 1, 1],
  ])("wanted %j with %i available takes %i", (wanted, available, chosen) => {
    expect(chooseSliceCount(wanted, available, "v4-16")).toBe(chosen);
  });

  it.each([
    [[4], 3, "insufficient slices of v4-16: wanted 4, available 3"],
    [[4, 2], 1, "insufficient slices of v4-16: wanted one of [4, 2], available 1"],
    [[2], 0, "insufficient slices of v4-16: wanted 2, available 0"],
  ])("wanted %j with %i available fails: %s", (wanted, available, message) => {
    expect(() => chooseSliceCount(wanted, available, "v4-16")).toThrow(InsufficientSlices);
    expect(() => chooseSliceCount(wanted, available, "v4-16")).toThrow(message);
  });
});

describe("cluster layout and placement", () => {
  it("parses cluster specs", () => {
    expect(parseClusterSpec("v4-16x2, v4-8 ,cpux4,gpu-a100-80gb-8x2")).toEqual([
      { kind: "tpu", type: "v4-16", count: 2 },
      { kind: "tpu", type: "v4-8", count: 1 },
      { kind: "cpu", type: "cpu", count: 4 },
      { kind: "gpu", type: "gpu-a100-80gb-8", gpuType: "a100-80gb", gpusPerHost: 8, count: 2 },
    ]);
    expect(() => parseClusterSpec("v4-7x2")).toThrow(UnknownAcceleratorType);
    expect(() => parseClusterSpec("v4-8x0")).toThrow(/count from 1/);
    expect(() => parseClusterSpec("")).toThrow(/empty cluster spec/);
    expect(() => parseClusterSpec("gpu-h100-32x1")).toThrow(/1 to 16 GPUs/);
  });

  it("lays out one loopback address per simulated host", () => {
    const layout = layoutLocalCluster(parseClusterSpec("v4-16x2,v4-8x1"));
    expect(layout.map((s) => [s.name, s.type, s.hosts.map((h) => `${h.workerId}@${h.address}`)])).toEqual([
      ["v4-16-0", "v4-16", ["0@127.0.1.1", "1@127.0.1.2"]],
      ["v4-16-1", "v4-16", ["0@127.0.1.3", "1@127.0.1.4"]],
      ["v4-8-0", "v4-8", ["0@127.0.1.5"]],
    ]);
    expect(loopbackAddress(253)).toBe("127.0.1.254");
    expect(loopbackAddress(254)).toBe("127.0.2.1");
  });

  it("takes the largest feasible flexible count: [4,2] on 3 slices takes 2", () => {
    const { choice, slices } = selectSlices(job([4, 2]), layoutLocalCluster(parseClusterSpec("v4-16x3")));
    expect(choice).toEqual({ wanted: [4, 2], available: 3, chosen: 2 });
    expect(slices.map((s) => s.name)).toEqual(["v4-16-0", "v4-16-1"]);
  });

  it("only counts whole slices of the job's type", () => {
    const layout = layoutLocalCluster(parseClusterSpec("v4-16x2,v4-8x3"));
    const broken = layout[1];
    if (!broken) throw new Error("layout");
    broken.hosts = broken.hosts.slice(0, 1);
    expect(() => selectSlices(job(2), layout)).toThrow("wanted 2, available 1");
  });

  it("refuses to place on an incomplete slice or two workers on one host", () => {
    const layout = layoutLocalCluster(parseClusterSpec("v4-16x2"));
    const [a, b] = layout;
    if (!a || !b) throw new Error("layout");
    expect(() => placeJob(job(2), [a, { ...b, hosts: b.hosts.slice(1) }])).toThrow(SliceUnhealthy);
    const clash = { ...b, hosts: b.hosts.map((h) => ({ ...h, address: a.hosts[0]?.address ?? "" })) };
    expect(() => placeJob(job(2), [a, clash])).toThrow(/two workers on one host/);
  });

  it("orders hosts by worker id and coordinates on slice 0's head", () => {
    const layout = layoutLocalCluster(parseClusterSpec("v4-32x1"));
    const s = layout[0];
    if (!s) throw new Error("layout");
    const shuffled = { ...s, hosts: [...s.hosts].reverse() };
    const placement = placeJob(job(1, "v4-32"), [shuffled]);
    expect(placement.slices[0]?.hosts.map((h) => h.index)).toEqual([0, 1, 2, 3]);
    expect(placement.coordinatorIp).toBe("127.0.1.1");
  });

  it("picks hosts for GPU and CPU jobs from matching pools only", () => {
    const gpu = parseJobSpec({
      name: "g",
      accelerator: { kind: "gpu", type: "h100", count: 8, hosts: 3 },
      workload: { command: ["x"] },
    });
    const layout = layoutLocalCluster(
      parseClusterSpec("gpu-a100-8x4,gpu-h100-8x2,gpu-h100-4x4,gpu-h100-8x1"),
    );
    const { slices } = selectSlices(gpu, layout);
    expect(slices[0]?.hosts.map((h) => h.workerId)).toEqual([0, 1, 2]);
    expect(() =>
      selectSlices(
        { ...gpu, accelerator: { ...gpu.accelerator, hosts: 4 } as typeof gpu.accelerator },
        layout,
      ),
    ).toThrow("insufficient hosts of gpu h100 with 8 GPUs per host: wanted 4, available 3");
  });

  it("plans on placeholder hosts that can never be reached", () => {
    const cluster = placeholderCluster(job([4, 2]));
    expect(cluster).toHaveLength(4);
    expect(cluster.flatMap((s) => s.hosts.map((h) => h.address)).every((a) => a.endsWith(".invalid"))).toBe(
      true,
    );
  });
});
