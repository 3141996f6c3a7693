import { describe, expect, it } from "vitest";
import { layoutLocalCluster, parseClusterSpec } from "../../core/cluster-spec.js";
import { agentRunFiles, computeHostEnvironments } from "../../core/env-contract.js";
import { CONTRACT_VARIABLES, inheritableEnvironment, isReservedVariable } from "../../core/env-names.js";
import { parseJobSpec } from "../../core/job-spec.js";
import { placeJob, selectSlices } from "../../core/placement.js";

const tpuJob = (slices: number | number[], extra: Record<string, unknown> = {}) =>
  parseJobSpec({
    name: "train",
    accelerator: { kind: "tpu", type: "v4-16", slices },
    workload: { command: ["python3", "train.py"], env: { USER_VAR: "kept" } },
    ...extra,
  });

function environments(jobSpec: ReturnType<typeof parseJobSpec>, cluster: string, attempt = 1) {
  const { slices } = selectSlices(jobSpec, layoutLocalCluster(parseClusterSpec(cluster)));
  return computeHostEnvironments(jobSpec, placeJob(jobSpec, slices), { jobId: "train-abc", attempt });
}

describe("environment contract", () => {
  it("gives every host of a multi-slice TPU job the MegaScale set", () => {
    const envs = environments(tpuJob(2), "v4-16x2");
    expect(envs).toHaveLength(4);
    expect(envs.map((e) => [e.sliceIndex, e.hostIndex, e.workerIndex])).toEqual([
      [0, 0, 0],
      [0, 1, 1],
      [1, 0, 2],
      [1, 1, 3],
    ]);
    const head = envs[0]?.address;
    for (const e of envs) {
      expect(e.env).toMatchObject({
        MEGASCALE_COORDINATOR_ADDRESS: `${head}:8081`,
        MEGASCALE_NUM_SLICES: "2",
        MEGASCALE_PORT: "8081",
        MEGASCALE_SLICE_ID: String(e.sliceIndex),
        EXECUTOR_CALL_SLICE: String(e.sliceIndex),
        EXECUTOR_CALL_INDEX: String(e.hostIndex),
        TPU_HOST_ID: String(e.hostIndex),
        TPU_NAME: e.sliceName,
        TPU_SLICE_NAME: e.sliceName,
        TPU_VERSION: "v4-16",
        TPU_ZONE: "EMPTY",
        TPU_POD_COUNT: "2",
        TPU_NUM_DEVICES: "4",
        GANGWAY_JOB_ID: "train-abc",
        GANGWAY_ATTEMPT: "1",
        USER_VAR: "kept",
      });
    }
  });

  it("sets no MegaScale variable for a single slice, exactly as the ancestors", () => {
    const envs = environments(tpuJob(1), "v4-16x2");
    expect(envs).toHaveLength(2);
    for (const e of envs) {
      expect(
        Object.keys(e.env).filter((k) => k.startsWith("MEGASCALE_") || k === "EXECUTOR_CALL_SLICE"),
      ).toEqual([]);
      expect(e.env.TPU_POD_COUNT).toBe("1");
    }
  });

  it("uses the configured coordinator port and zone", () => {
    const job = parseJobSpec({
      name: "z",
      accelerator: { kind: "tpu", type: "v4-8", slices: 2, zone: "us-central2-b" },
      workload: { command: ["x"] },
      coordinatorPort: 9000,
    });
    const envs = environments(job, "v4-8x2");
    expect(envs.map((e) => e.env.MEGASCALE_COORDINATOR_ADDRESS)).toEqual([
      "127.0.1.1:9000",
      "127.0.1.1:9000",
    ]);
    expect(envs.every((e) => e.env.TPU_ZONE === "us-central2-b" && e.env.MEGASCALE_PORT === "9000")).toBe(
      true,
    );
  });

  it("computes every attempt afresh: only attempt-bound values change, nothing is carried over", () => {
    const job = tpuJob(2);
    const first = environments(job, "v4-16x2", 1);
    const third = environments(job, "v4-16x2", 3);
    for (const [i, e] of third.entries()) {
      const before = first[i]?.env ?? {};
      const changed = Object.keys(e.env).filter((k) => e.env[k] !== before[k]);
      expect(changed).toEqual(["GANGWAY_ATTEMPT"]);
    }
    // After a preemption the job may land on other slices: the coordinator moves with slice 0.
    const moved = (() => {
      const cluster = layoutLocalCluster(parseClusterSpec("v4-16x3")).slice(1);
      const { slices } = selectSlices(job, cluster);
      return computeHostEnvironments(job, placeJob(job, slices), { jobId: "train-abc", attempt: 2 });
    })();
    expect(moved[0]?.env.MEGASCALE_COORDINATOR_ADDRESS).toBe(`${moved[0]?.address}:8081`);
    expect(moved[0]?.env.MEGASCALE_COORDINATOR_ADDRESS).not.toBe(first[0]?.env.MEGASCALE_COORDINATOR_ADDRESS);
  });

  it("gives GPU hosts the torch and JAX distributed set, one process per host", () => {
    const job = parseJobSpec({
      name: "g",
      accelerator: { kind: "gpu", type: "h100", count: 8, hosts: 3 },
      workload: { command: ["x"] },
    });
    const envs = environments(job, "gpu-h100-8x4");
    expect(envs).toHaveLength(3);
    for (const e of envs) {
      expect(e.env).toMatchObject({
        MASTER_ADDR: "127.0.1.1",
        MASTER_PORT: "8081",
        WORLD_SIZE: "3",
        RANK: String(e.workerIndex),
        NODE_RANK: String(e.workerIndex),
        LOCAL_RANK: "0",
        NNODES: "3",
        NPROC_PER_NODE: "8",
        JAX_COORDINATOR_ADDRESS: "127.0.1.1:8081",
        JAX_NUM_PROCESSES: "3",
        JAX_PROCESS_ID: String(e.workerIndex),
        GANGWAY_GPU_TYPE: "h100",
        GANGWAY_GPUS_PER_HOST: "8",
      });
      expect(Object.keys(e.env).some((k) => k.startsWith("TPU_") || k.startsWith("MEGASCALE_"))).toBe(false);
    }
  });

  it("gives CPU hosts the distributed set without GPU variables", () => {
    const job = parseJobSpec({
      name: "c",
      accelerator: { kind: "cpu", hosts: 2 },
      workload: { command: ["x"] },
    });
    const envs = environments(job, "cpux2");
    expect(envs.map((e) => [e.env.RANK, e.env.WORLD_SIZE, e.env.NPROC_PER_NODE])).toEqual([
      ["0", "2", "1"],
      ["1", "2", "1"],
    ]);
    expect(envs[0]?.env.GANGWAY_GPU_TYPE).toBeUndefined();
  });

  it("only ever sets names of the contract (or the job's own)", () => {
    const all = [
      ...environments(tpuJob(2), "v4-16x2"),
      ...environments(
        parseJobSpec({
          name: "g",
          accelerator: { kind: "gpu", type: "h100", count: 8, hosts: 2 },
          workload: { command: ["x"] },
        }),
        "gpu-h100-8x2",
      ),
    ];
    const names = new Set<string>(CONTRACT_VARIABLES);
    for (const e of all)
      for (const k of Object.keys(e.env)) expect(names.has(k) || k === "USER_VAR").toBe(true);
  });

  it("keeps each host's run files apart", () => {
    const a = agentRunFiles("/w/", { jobId: "j/1", attempt: 2 }, 0, 1);
    const b = agentRunFiles("/w", { jobId: "j/1", attempt: 2 }, 1, 0);
    expect(a.resultFile).toBe("/w/runs/j_1/attempt-2/slice-0-host-1/result.json");
    expect(a.dir).not.toBe(b.dir);
  });

  it("strips stale contract and Ray variables from what an agent passes down", () => {
    const inherited = inheritableEnvironment({
      PATH: "/bin",
      HOME: "/root",
      MEGASCALE_COORDINATOR_ADDRESS: "10.0.0.1:8081",
      MEGASCALE_SOMETHING_NEW: "x",
      GANGWAY_ATTEMPT: "3",
      TPU_NAME: "old",
      RANK: "5",
      RAY_ADDRESS: "x",
      UNSET: undefined,
    });
    expect(inherited).toEqual({ PATH: "/bin", HOME: "/root" });
    expect(isReservedVariable("GANGWAY_ANYTHING")).toBe(true);
    expect(isReservedVariable("RAY_ADDRESS")).toBe(false);
  });
});
