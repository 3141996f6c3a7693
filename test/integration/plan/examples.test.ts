import { execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { loadJobFile } from "../../../cli/load-job.js";
import { layoutLocalCluster, parseClusterSpec } from "../../../core/cluster-spec.js";
import { agentRunFiles } from "../../../core/env-contract.js";
import { inheritableEnvironment } from "../../../core/env-names.js";
import type { JobSpec } from "../../../core/job-spec.js";
import { type JobPlan, planJob } from "../../../core/plan.js";

const repo = new URL("../../../", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "gangway-examples-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A port free on `address` right now (the examples bind their coordinator there). */
function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, address, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/** Run every host of a plan as a real process with its planned environment; collect exits and results. */
async function runPlan(plan: JobPlan, job: JobSpec) {
  const hosts = plan.slices.flatMap((s) => s.hosts.map((h) => ({ slice: s.index, ...h })));
  const runs = hosts.map(
    (h) =>
      new Promise<{ code: number | null; stderr: string; result: unknown }>((resolve) => {
        mkdirSync(dirname(h.env.GANGWAY_RESULT_FILE ?? ""), { recursive: true });
        const [program = "", ...args] = job.workload.command;
        const child = spawn(program, args, {
          cwd: repo,
          env: { ...inheritableEnvironment(process.env), ...h.env },
        });
        let stderr = "";
        child.stderr.on("data", (d) => {
          stderr += d;
        });
        child.on("close", (code) => {
          let result: unknown;
          try {
            result = JSON.parse(readFileSync(h.env.GANGWAY_RESULT_FILE ?? "", "utf8"));
          } catch {
            result = undefined;
          }
          resolve({ code, stderr, result });
        });
      }),
  );
  return Promise.all(runs);
}

describe("gangway plan, as a real process", () => {
  it("prints 2 slices × 2 hosts for the TPU example on v4-16x2", async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["bin/gangway.mjs", "plan", "examples/tpu-multislice/job.yaml", "--cluster", "v4-16x2", "--json"],
      { cwd: repo },
    );
    const plan = JSON.parse(stdout) as JobPlan;
    expect(
      plan.slices.map((s) =>
        s.hosts.map((h) => [h.env.MEGASCALE_NUM_SLICES, h.env.MEGASCALE_SLICE_ID, h.env.EXECUTOR_CALL_INDEX]),
      ),
    ).toEqual([
      [
        ["2", "0", "0"],
        ["2", "0", "1"],
      ],
      [
        ["2", "1", "0"],
        ["2", "1", "1"],
      ],
    ]);
  });

  it("exits 2 with every problem listed for a malformed job", async () => {
    const result = await promisify(execFile)(process.execPath, ["bin/gangway.mjs", "plan", "package.json"], {
      cwd: repo,
    }).catch((e: { code: number; stderr: string }) => e);
    expect((result as { code: number }).code).toBe(2);
    expect((result as { stderr: string }).stderr).toContain("version: expected one of the known fields");
  });
});

describe("the example workloads accept the environment gangway plans for them", () => {
  it("runs the multi-slice TPU example: every worker meets at the MegaScale coordinator", async () => {
    const job = await loadJobFile("examples/tpu-multislice/job.yaml", repo);
    // Hosts far from other tests' loopback addresses; a coordinator port free right now.
    const cluster = layoutLocalCluster(parseClusterSpec("v4-16x2"), 180);
    const port = await freePort(cluster[0]?.hosts[0]?.address ?? "");
    const fast = {
      ...job,
      coordinatorPort: port,
      workload: {
        ...job.workload,
        command: [
          ...job.workload.command.slice(0, 2),
          "--steps",
          "3",
          "--step-seconds",
          "0.01",
          "--barrier",
          "--barrier-timeout",
          "30",
        ],
      },
    };
    const plan = planJob(fast, cluster, { jobId: "examples-tpu", attempt: 1, agentWorkDir: work });
    const runs = await runPlan(plan, fast);
    for (const r of runs) expect(r.stderr).toBe("");
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    expect(runs.map((r) => r.result)).toEqual([
      expect.objectContaining({ slice: 0, host: 0, worker: 0, megascaleSliceId: "0", attempt: 1 }),
      expect.objectContaining({ slice: 0, host: 1, worker: 1, megascaleSliceId: "0" }),
      expect.objectContaining({ slice: 1, host: 0, worker: 2, megascaleSliceId: "1" }),
      expect.objectContaining({ slice: 1, host: 1, worker: 3, megascaleSliceId: "1" }),
    ]);
  });

  it("fails the TPU example with a serialized error when its environment is wrong", async () => {
    const job = await loadJobFile("examples/tpu-multislice/job.yaml", repo);
    const single = {
      ...job,
      accelerator: { ...job.accelerator, slices: 1 },
      workload: { ...job.workload, command: ["python3", "examples/tpu-multislice/train.py", "--steps", "1"] },
    } as JobSpec;
    const plan = planJob(single, layoutLocalCluster(parseClusterSpec("v4-16x1"), 190), {
      jobId: "bad",
      attempt: 1,
      agentWorkDir: work,
    });
    const host = plan.slices[0]?.hosts[0];
    if (!host) throw new Error("no host");
    // A stale MegaScale variable on a single-slice job: exactly the field bug the contract prevents.
    host.env.MEGASCALE_NUM_SLICES = "2";
    const files = agentRunFiles(work, { jobId: "bad", attempt: 1 }, 0, 0);
    const [run, other] = await runPlan(plan, single);
    expect(run?.code).toBe(1);
    expect(other?.code).toBe(0);
    expect(JSON.parse(readFileSync(files.errorFile, "utf8"))).toMatchObject({
      name: "EnvironmentContractError",
    });
  });

  it("runs the GPU and CPU examples on every host", async () => {
    const gpu = await loadJobFile("examples/gpu-multihost/job.yaml", repo);
    const gpuRuns = await runPlan(
      planJob(gpu, layoutLocalCluster(parseClusterSpec("gpu-h100-8x2"), 192), {
        jobId: "g",
        attempt: 1,
        agentWorkDir: work,
      }),
      gpu,
    );
    expect(gpuRuns.map((r) => r.code)).toEqual([0, 0]);
    expect(gpuRuns.map((r) => (r.result as { rank: number }).rank)).toEqual([0, 1]);

    const cpu = await loadJobFile("examples/cpu-hosts/job.yaml", repo);
    const cpuRuns = await runPlan(
      planJob(cpu, layoutLocalCluster(parseClusterSpec("cpux4"), 195), {
        jobId: "c",
        attempt: 1,
        agentWorkDir: work,
      }),
      cpu,
    );
    expect(cpuRuns.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    // 17,984 primes below 200,000, shared among four hosts.
    expect(cpuRuns.reduce((n, r) => n + (r.result as { primes: number }).primes, 0)).toBe(17_984);
  });
});
