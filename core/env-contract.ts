import type { ContractVariable } from "./env-names.js";
import type { JobSpec } from "./job-spec.js";
import type { Placement } from "./placement.js";
import { tpuType } from "./tpu-catalog.js";

/** What identifies one attempt of one job: the environment is computed afresh from it every time. */
export interface AttemptContext {
  jobId: string;
  /** 1-based attempt number. */
  attempt: number;
}

/** One host's environment for one attempt. */
export interface HostEnvironment {
  sliceIndex: number;
  sliceName: string;
  hostIndex: number;
  /** Global index over all hosts, slice-major: the order results come back in. */
  workerIndex: number;
  address: string;
  agent?: string | undefined;
  /** The job's own `workload.env`, then every contract variable (gangway's win). */
  env: Record<string, string>;
}

type Vars = Partial<Record<ContractVariable, string>>;

/** The files an agent gives a run: where the workload writes its result and its error. */
export interface RunFiles {
  resultFile: string;
  errorFile: string;
  dir: string;
}

/**
 * Where an agent with work directory `workDir` keeps one host's run of one attempt. Unique per
 * job, attempt, slice and host, so simulated hosts sharing one filesystem never collide.
 */
export function agentRunFiles(
  workDir: string,
  ctx: AttemptContext,
  sliceIndex: number,
  hostIndex: number,
): RunFiles {
  const safeJob = ctx.jobId.replace(/[^A-Za-z0-9._-]/g, "_");
  const dir = `${workDir.replace(/\/+$/, "")}/runs/${safeJob}/attempt-${ctx.attempt}/slice-${sliceIndex}-host-${hostIndex}`;
  return { dir, resultFile: `${dir}/result.json`, errorFile: `${dir}/error.json` };
}

/**
 * Every host's environment for one attempt (DESIGN.md "Environment on every host").
 * TPU: the eformer/Levanter set, MEGASCALE_* and EXECUTOR_CALL_SLICE only with more than one
 * slice, exactly as the ancestors. GPU/CPU: torch and JAX distributed, one process per host.
 * `GANGWAY_RESULT_FILE` / `GANGWAY_ERROR_FILE` are added by the agent that runs it
 * (see {@link agentRunFiles}); pass `runFiles` to include them here (as `gangway plan` does).
 *
 * @example
 * const envs = computeHostEnvironments(job, placement, { jobId: "train-1a2b", attempt: 3 });
 */
export function computeHostEnvironments(
  job: JobSpec,
  placement: Placement,
  ctx: AttemptContext,
  runFiles?: (sliceIndex: number, hostIndex: number) => RunFiles,
): HostEnvironment[] {
  if (!Number.isInteger(ctx.attempt) || ctx.attempt < 1)
    throw new RangeError(`attempt must be ≥ 1, got ${ctx.attempt}`);
  const numSlices = placement.slices.length;
  const hostsPerSlice = placement.slices[0]?.hosts.length ?? 0;
  const numHosts = placement.slices.reduce((n, s) => n + s.hosts.length, 0);
  const coordinator = `${placement.coordinatorIp}:${placement.coordinatorPort}`;
  const out: HostEnvironment[] = [];
  let workerIndex = 0;
  for (const slice of placement.slices) {
    for (const host of slice.hosts) {
      const vars: Vars = {
        GANGWAY_JOB_ID: ctx.jobId,
        GANGWAY_JOB_NAME: job.name,
        GANGWAY_ATTEMPT: String(ctx.attempt),
        GANGWAY_ACCELERATOR: placement.kind === "tpu" ? placement.type : placement.kind,
        GANGWAY_SLICE_INDEX: String(slice.index),
        GANGWAY_SLICE_NAME: slice.name,
        GANGWAY_HOST_INDEX: String(host.index),
        GANGWAY_WORKER_INDEX: String(workerIndex),
        GANGWAY_NUM_SLICES: String(numSlices),
        GANGWAY_HOSTS_PER_SLICE: String(hostsPerSlice),
        GANGWAY_NUM_HOSTS: String(numHosts),
        GANGWAY_COORDINATOR_ADDRESS: coordinator,
        GANGWAY_HOST_ADDRESS: host.address,
        EXECUTOR_CALL_INDEX: String(host.index),
      };
      if (runFiles) {
        const files = runFiles(slice.index, host.index);
        vars.GANGWAY_RESULT_FILE = files.resultFile;
        vars.GANGWAY_ERROR_FILE = files.errorFile;
      }
      if (job.accelerator.kind === "tpu") {
        const tpu = tpuType(job.accelerator.type);
        Object.assign(vars, {
          TPU_NAME: slice.name,
          TPU_SLICE_NAME: slice.name,
          TPU_VERSION: tpu.name,
          TPU_ACCELERATOR_TYPE: tpu.name,
          TPU_ZONE: job.accelerator.zone ?? slice.zone ?? "EMPTY",
          TPU_POD_COUNT: String(numSlices),
          TPU_HOST_ID: String(host.index),
          TPU_NUM_DEVICES: String(tpu.chipsPerHost),
        } satisfies Vars);
        if (numSlices > 1) {
          Object.assign(vars, {
            EXECUTOR_CALL_SLICE: String(slice.index),
            MEGASCALE_COORDINATOR_ADDRESS: coordinator,
            MEGASCALE_NUM_SLICES: String(numSlices),
            MEGASCALE_PORT: String(placement.coordinatorPort),
            MEGASCALE_SLICE_ID: String(slice.index),
          } satisfies Vars);
        }
      } else {
        // One process per host: ranks count hosts. A per-GPU launcher (torchrun) reads
        // NNODES / NODE_RANK / NPROC_PER_NODE and sets its children's RANK itself.
        Object.assign(vars, {
          MASTER_ADDR: placement.coordinatorIp,
          MASTER_PORT: String(placement.coordinatorPort),
          WORLD_SIZE: String(numHosts),
          RANK: String(workerIndex),
          NODE_RANK: String(workerIndex),
          LOCAL_RANK: "0",
          LOCAL_WORLD_SIZE: "1",
          NNODES: String(numHosts),
          JAX_COORDINATOR_ADDRESS: coordinator,
          JAX_NUM_PROCESSES: String(numHosts),
          JAX_PROCESS_ID: String(workerIndex),
        } satisfies Vars);
        if (job.accelerator.kind === "gpu") {
          Object.assign(vars, {
            NPROC_PER_NODE: String(job.accelerator.count),
            GANGWAY_GPU_TYPE: job.accelerator.type,
            GANGWAY_GPUS_PER_HOST: String(job.accelerator.count),
          } satisfies Vars);
        } else {
          vars.NPROC_PER_NODE = "1";
        }
      }
      out.push({
        sliceIndex: slice.index,
        sliceName: slice.name,
        hostIndex: host.index,
        workerIndex,
        address: host.address,
        agent: host.agent,
        env: { ...job.workload.env, ...(vars as Record<string, string>) },
      });
      workerIndex++;
    }
  }
  return out;
}
