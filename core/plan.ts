import type { ClusterSlice } from "./cluster-spec.js";
import { agentRunFiles, computeHostEnvironments, type HostEnvironment } from "./env-contract.js";
import type { JobSpec } from "./job-spec.js";
import { placeholderCluster, placeJob, type SliceChoice, selectSlices } from "./placement.js";
import { tpuType } from "./tpu-catalog.js";

/**
 * The agents' work dir a plan shows paths under: the one the documented deployment gives them
 * (docs/static-inventory.md's unit, `--work-dir /var/lib/gangway-agent`); an agent started
 * without `--work-dir` has one of its own per listen address.
 */
export const DEFAULT_AGENT_WORK_DIR = "/var/lib/gangway-agent";

/** Everything one attempt of a job would do, computed without launching anything. */
export interface JobPlan {
  job: JobSpec;
  jobId: string;
  attempt: number;
  /** `true` when the layout is made of placeholder hosts (no cluster given). */
  placeholder: boolean;
  sliceCount: SliceChoice;
  kind: JobSpec["accelerator"]["kind"];
  type: string;
  hostsPerSlice: number;
  devicesPerHost: number;
  coordinator: string;
  multislice: boolean;
  slices: Array<{
    index: number;
    name: string;
    type: string;
    hosts: Array<Omit<HostEnvironment, "sliceIndex" | "sliceName">>;
  }>;
}

/**
 * Plan one attempt of `job` on `cluster` (placeholder hosts when none): which slices it takes,
 * every host, and the full environment each host would get. Throws InsufficientSlices when
 * the cluster cannot hold the job.
 *
 * @example
 * planJob(job, layoutLocalCluster(parseClusterSpec("v4-16x2")), { jobId: "demo", attempt: 1 })
 */
export function planJob(
  job: JobSpec,
  cluster: readonly ClusterSlice[] | undefined,
  ctx: { jobId: string; attempt: number; agentWorkDir?: string },
): JobPlan {
  const layout = cluster ?? placeholderCluster(job);
  const { choice, slices } = selectSlices(job, layout);
  const placement = placeJob(job, slices);
  const workDir = ctx.agentWorkDir ?? DEFAULT_AGENT_WORK_DIR;
  const envs = computeHostEnvironments(job, placement, ctx, (s, h) => agentRunFiles(workDir, ctx, s, h));
  const acc = job.accelerator;
  const devicesPerHost =
    acc.kind === "tpu" ? tpuType(acc.type).chipsPerHost : acc.kind === "gpu" ? acc.count : 0;
  return {
    job,
    jobId: ctx.jobId,
    attempt: ctx.attempt,
    placeholder: cluster === undefined,
    sliceCount: choice,
    kind: placement.kind,
    type: placement.type,
    hostsPerSlice: placement.slices[0]?.hosts.length ?? 0,
    devicesPerHost,
    coordinator: `${placement.coordinatorIp}:${placement.coordinatorPort}`,
    multislice: placement.slices.length > 1,
    slices: placement.slices.map((s) => ({
      index: s.index,
      name: s.name,
      type: s.type,
      hosts: envs
        .filter((e) => e.sliceIndex === s.index)
        .map(({ sliceIndex: _s, sliceName: _n, ...host }) => host),
    })),
  };
}
