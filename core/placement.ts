import type { ClusterHost, ClusterSlice } from "./cluster-spec.js";
import { InsufficientSlices, SliceUnhealthy } from "./errors.js";
import { acceptableSliceCounts, type JobSpec } from "./job-spec.js";
import { tpuType } from "./tpu-catalog.js";

/** A host placed in an attempt: its index within the slice and its address. */
export interface PlacedHost {
  /** Index within the slice (0 = slice head), from the host's worker id. */
  index: number;
  address: string;
  agent?: string | undefined;
}

/** A slice placed in an attempt, in slice order (slice 0 holds the coordinator). */
export interface PlacedSlice {
  index: number;
  name: string;
  type: string;
  hosts: PlacedHost[];
  zone?: string | undefined;
}

/** Where every worker of one attempt runs. One worker per host; slice 0's head coordinates. */
export interface Placement {
  kind: "tpu" | "gpu" | "cpu";
  /** Accelerator type: `v4-16`, the GPU model, or `cpu`. */
  type: string;
  slices: PlacedSlice[];
  /** Address of slice 0's head (worker 0). */
  coordinatorIp: string;
  coordinatorPort: number;
}

/** How many slices (or hosts) a job wants and could get. */
export interface SliceChoice {
  wanted: number[];
  available: number;
  chosen: number;
}

/**
 * Pick the slice count: an exact count needs that many; a flexible list takes the largest
 * feasible count (FACTS.md). Throws {@link InsufficientSlices} naming wanted vs available.
 *
 * @example
 * chooseSliceCount([4, 2], 3, "v4-16") // 2
 */
export function chooseSliceCount(wanted: readonly number[], available: number, type: string): number {
  const sorted = [...wanted].sort((a, b) => b - a);
  const chosen = sorted.find((n) => n <= available);
  if (chosen === undefined) throw new InsufficientSlices(sorted, available, type);
  return chosen;
}

/** A slice with exactly its type's hosts, worker ids 0..n-1 each once: one a job can be placed on. */
export function isWhole(slice: ClusterSlice, hostsPerSlice: number): boolean {
  if (slice.hosts.length !== hostsPerSlice) return false;
  const ids = new Set(slice.hosts.map((h) => h.workerId));
  return ids.size === hostsPerSlice && [...ids].every((id) => id >= 0 && id < hostsPerSlice);
}

/**
 * Natural order of slice names, numbers by value (`v4-16-2` before `v4-16-10`), the same on every
 * machine (no locale). ScaleSlices takes slices in this order and so does a plan, so the plan
 * shows the slices, and the coordinator, a run gets.
 *
 * @example
 * ["v4-16-10", "v4-16-2"].sort(compareSliceNames) // ["v4-16-2", "v4-16-10"]
 */
export function compareSliceNames(a: string, b: string): number {
  const pa = a.match(/\d+|\D+/g) ?? [];
  const pb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i] as string;
    const y = pb[i] as string;
    if (x === y) continue;
    if (/^\d/.test(x) && /^\d/.test(y)) {
      const nx = x.replace(/^0+/, "");
      const ny = y.replace(/^0+/, "");
      if (nx.length !== ny.length) return nx.length - ny.length;
      if (nx !== ny) return nx < ny ? -1 : 1;
      continue; // the same number written with other leading zeros: settled below
    }
    return x < y ? -1 : 1;
  }
  if (pa.length !== pb.length) return pa.length - pb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The cluster slices (TPU: whole ones of the job's type) or pools (GPU/CPU: of the job's kind,
 * type and GPUs per host) a job can draw from, in {@link compareSliceNames} order.
 */
export function matchingSlices(
  acc: JobSpec["accelerator"],
  cluster: readonly ClusterSlice[],
): ClusterSlice[] {
  const matches =
    acc.kind === "tpu"
      ? (s: ClusterSlice) => s.kind === "tpu" && s.type === acc.type && isWhole(s, tpuType(acc.type).hosts)
      : acc.kind === "gpu"
        ? (s: ClusterSlice) => s.kind === "gpu" && s.gpuType === acc.type && (s.gpusPerHost ?? 0) >= acc.count
        : (s: ClusterSlice) => s.kind === "cpu";
  return cluster.filter(matches).sort((a, b) => compareSliceNames(a.name, b.name));
}

/** What a provider's autoscaler is asked for: the TPU type, `gpu-MODEL-N`, or `cpu`. */
export const providerType = (acc: JobSpec["accelerator"]): string =>
  acc.kind === "tpu" ? acc.type : acc.kind === "gpu" ? `gpu-${acc.type}-${acc.count}` : "cpu";

/**
 * Choose the cluster slices a job would take now: matching type, whole, as many as the job's
 * slice counts allow, in {@link compareSliceNames} order (as ScaleSlices takes them). For GPU/CPU
 * jobs the matching hosts of all pools form one slice.
 */
export function selectSlices(
  job: JobSpec,
  cluster: readonly ClusterSlice[],
): { choice: SliceChoice; slices: ClusterSlice[] } {
  const acc = job.accelerator;
  if (acc.kind === "tpu") {
    const candidates = matchingSlices(acc, cluster);
    const wanted = acceptableSliceCounts(acc);
    const chosen = chooseSliceCount(wanted, candidates.length, acc.type);
    return { choice: { wanted, available: candidates.length, chosen }, slices: candidates.slice(0, chosen) };
  }
  const pools = matchingSlices(acc, cluster);
  const hosts = pools.flatMap((s) => s.hosts);
  const label = acc.kind === "gpu" ? `gpu ${acc.type} with ${acc.count} GPUs per host` : "cpu";
  if (hosts.length < acc.hosts) throw new InsufficientSlices([acc.hosts], hosts.length, label, "hosts");
  const picked = hosts.slice(0, acc.hosts).map((h, workerId): ClusterHost => ({ ...h, workerId }));
  const name = pools[0]?.name ?? acc.kind;
  const type = acc.kind === "gpu" ? acc.type : "cpu";
  return {
    choice: { wanted: [acc.hosts], available: hosts.length, chosen: acc.hosts },
    slices: [{ name, kind: acc.kind, type, hosts: picked }],
  };
}

/**
 * Place a job on chosen slices: slice order as given, hosts by worker id, one worker per host.
 * Throws {@link SliceUnhealthy} when a slice is not whole or two workers would share a host.
 */
export function placeJob(job: JobSpec, slices: readonly ClusterSlice[]): Placement {
  const acc = job.accelerator;
  const hostsPerSlice = acc.kind === "tpu" ? tpuType(acc.type).hosts : acc.hosts;
  const seen = new Map<string, { slice: string; worker: string }>();
  const placed: PlacedSlice[] = slices.map((slice, index) => {
    if (!isWhole(slice, hostsPerSlice)) {
      throw new SliceUnhealthy(
        `slice ${slice.name} has ${slice.hosts.length} usable of ${hostsPerSlice} hosts (worker ids ${slice.hosts
          .map((h) => h.workerId)
          .join(", ")})`,
        { slice: slice.name, slices: [slice.name], hosts: slice.hosts.length, wanted: hostsPerSlice },
      );
    }
    const hosts = [...slice.hosts]
      .sort((a, b) => a.workerId - b.workerId)
      .map((h) => {
        const other = seen.get(h.address);
        if (other !== undefined) {
          throw new SliceUnhealthy(
            `two workers on one host ${h.address}: ${other.worker} and ${slice.name}#${h.workerId}`,
            { address: h.address, slices: [...new Set([other.slice, slice.name])] },
          );
        }
        seen.set(h.address, { slice: slice.name, worker: `${slice.name}#${h.workerId}` });
        return { index: h.workerId, address: h.address, agent: h.agent };
      });
    return { index, name: slice.name, type: slice.type, hosts, zone: slice.zone };
  });
  const head = placed[0]?.hosts[0];
  if (!head) throw new SliceUnhealthy("no slice to place the job on", {});
  return {
    kind: acc.kind,
    type: acc.kind === "tpu" ? acc.type : acc.kind === "gpu" ? acc.type : "cpu",
    slices: placed,
    coordinatorIp: head.address,
    coordinatorPort: job.coordinatorPort,
  };
}

/**
 * Placeholder slices for planning without a cluster: host names under the reserved `.invalid`
 * domain, so they can never be mistaken for (or reach) real machines.
 */
export function placeholderCluster(job: JobSpec): ClusterSlice[] {
  const acc = job.accelerator;
  const host = (s: number, h: number): ClusterHost => ({
    address: `slice-${s}-host-${h}.invalid`,
    workerId: h,
  });
  if (acc.kind === "tpu") {
    const count = Math.max(...acceptableSliceCounts(acc));
    const hosts = tpuType(acc.type).hosts;
    return Array.from({ length: count }, (_, s) => ({
      name: `${job.name}-slice-${s}`,
      kind: "tpu" as const,
      type: acc.type,
      zone: acc.zone,
      hosts: Array.from({ length: hosts }, (_, h) => host(s, h)),
    }));
  }
  return [
    {
      name: `${job.name}-hosts`,
      kind: acc.kind,
      type: providerType(acc),
      gpuType: acc.kind === "gpu" ? acc.type : undefined,
      gpusPerHost: acc.kind === "gpu" ? acc.count : undefined,
      hosts: Array.from({ length: acc.hosts }, (_, h) => host(0, h)),
    },
  ];
}
