import { UnknownAcceleratorType } from "./errors.js";
import { tpuType, tpuTypeProblem } from "./tpu-catalog.js";

/** One entry of a cluster spec such as `v4-16x2`: `count` slices (TPU) or a group of `count` hosts. */
export type ClusterPoolSpec =
  | { kind: "tpu"; type: string; count: number }
  | { kind: "gpu"; type: string; gpuType: string; gpusPerHost: number; count: number }
  | { kind: "cpu"; type: "cpu"; count: number };

/** A host of a cluster: its own address (one simulated host per loopback address) and worker id. */
export interface ClusterHost {
  /** IP address (or host name) of the host; workloads bind coordinators on it. */
  address: string;
  /** Worker id within its slice; 0 is the slice head. */
  workerId: number;
  /** Where the host's agent listens (`host:port`), when known. */
  agent?: string | undefined;
}

/** A slice of a cluster (for GPU/CPU: a group of hosts of one shape). */
export interface ClusterSlice {
  name: string;
  kind: "tpu" | "gpu" | "cpu";
  /** `v4-16` for TPU, `gpu-h100-8` for GPU, `cpu` for CPU. */
  type: string;
  hosts: ClusterHost[];
  gpuType?: string | undefined;
  gpusPerHost?: number | undefined;
  zone?: string | undefined;
}

const MAX_ENTRY_COUNT = 4096;

/**
 * Parse a cluster spec: comma-separated `TYPEx COUNT` entries (count 1 when omitted).
 * TYPE is a TPU type (`v4-16x2`: two v4-16 slices), `cpu` (`cpux4`: four CPU hosts) or
 * `gpu-MODEL-N` (`gpu-h100-8x2`: two hosts with eight H100s each).
 *
 * @example
 * parseClusterSpec("v4-16x2,v4-8x1") // [{kind:"tpu",type:"v4-16",count:2},{kind:"tpu",type:"v4-8",count:1}]
 */
export function parseClusterSpec(spec: string): ClusterPoolSpec[] {
  const entries = spec
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
  if (entries.length === 0) throw new UnknownAcceleratorType(`empty cluster spec ${JSON.stringify(spec)}`);
  return entries.map(parseEntry);
}

function parseEntry(entry: string): ClusterPoolSpec {
  const m = /^(.+?)(?:x(\d+))?$/.exec(entry);
  const type = m?.[1] ?? entry;
  const count = m?.[2] === undefined ? 1 : Number(m[2]);
  if (!Number.isInteger(count) || count < 1 || count > MAX_ENTRY_COUNT) {
    throw new UnknownAcceleratorType(
      `cluster entry ${JSON.stringify(entry)}: expected a count from 1 to ${MAX_ENTRY_COUNT}, got ${m?.[2]}`,
    );
  }
  if (type === "cpu") return { kind: "cpu", type: "cpu", count };
  const gpu = /^gpu-([a-z0-9][a-z0-9.-]*?)-(\d+)$/.exec(type);
  if (gpu) {
    const gpusPerHost = Number(gpu[2]);
    if (gpusPerHost < 1 || gpusPerHost > 16) {
      throw new UnknownAcceleratorType(
        `cluster entry ${JSON.stringify(entry)}: expected 1 to 16 GPUs per host`,
      );
    }
    return { kind: "gpu", type, gpuType: gpu[1] ?? "", gpusPerHost, count };
  }
  const problem = tpuTypeProblem(type);
  if (problem) {
    throw new UnknownAcceleratorType(
      `cluster entry ${JSON.stringify(entry)}: ${problem.message}; or cpu, or gpu-MODEL-N (e.g. gpu-h100-8x2)`,
      { entry },
    );
  }
  return { kind: "tpu", type, count };
}

/** The loopback address of the n-th simulated host (0-based): 127.0.1.1, 127.0.1.2 … 127.0.2.1 … */
export function loopbackAddress(n: number): string {
  const block = 1 + Math.floor(n / 254);
  if (block > 255) throw new RangeError(`too many simulated hosts: ${n + 1}`);
  return `127.0.${block}.${1 + (n % 254)}`;
}

/**
 * The layout of a local cluster: which slices, which hosts, which addresses. Deterministic, so
 * `gangway plan --cluster` shows exactly what the local provider brings up.
 */
export function layoutLocalCluster(pools: readonly ClusterPoolSpec[], firstHost = 0): ClusterSlice[] {
  const slices: ClusterSlice[] = [];
  const perType = new Map<string, number>();
  let nextHost = firstHost;
  const take = (n: number): ClusterHost[] =>
    Array.from({ length: n }, (_, workerId) => ({ address: loopbackAddress(nextHost++), workerId }));
  const nameFor = (type: string) => {
    const i = perType.get(type) ?? 0;
    perType.set(type, i + 1);
    return `${type}-${i}`;
  };
  for (const pool of pools) {
    if (pool.kind === "tpu") {
      const hosts = tpuType(pool.type).hosts;
      for (let i = 0; i < pool.count; i++) {
        slices.push({ name: nameFor(pool.type), kind: "tpu", type: pool.type, hosts: take(hosts) });
      }
    } else if (pool.kind === "gpu") {
      slices.push({
        name: nameFor(pool.type),
        kind: "gpu",
        type: pool.type,
        gpuType: pool.gpuType,
        gpusPerHost: pool.gpusPerHost,
        hosts: take(pool.count),
      });
    } else {
      slices.push({ name: nameFor("cpu"), kind: "cpu", type: "cpu", hosts: take(pool.count) });
    }
  }
  return slices;
}
