import type { ClusterSlice } from "../../../core/cluster-spec.js";

/**
 * Where slices come from. The control plane lists slices, asks for more (an autoscaler may add
 * them later; the answer says what it will add), and gives them back.
 */
export interface ClusterProvider {
  /** Slices ready now, each host with its agent's `host:port`. */
  listSlices(): ClusterSlice[];
  /**
   * Ask for `count` more slices of `type` (TPU type such as `v4-16`; for `cpu` / `gpu-MODEL-N` a
   * group of `count` hosts). Resolves with the slices added once they are up (maybe fewer than
   * asked, up to the quota; none for a provider that cannot scale).
   */
  requestSlices(type: string, count: number): Promise<ClusterSlice[]>;
  /** Give slices back; resolves with the names released (unknown names are ignored). */
  releaseSlices(names: readonly string[]): Promise<string[]>;
  close(): Promise<void>;
}
