import { acceptableSliceCounts, type JobSpec } from "./job-spec.js";

/**
 * The acceptable slice counts larger than `current` a job may grow to while it runs, smallest
 * first; none when it cannot grow (an exact count, GPU/CPU hosts, `scaleUp.enabled: false`).
 *
 * @example
 * largerSliceCounts(job({ slices: [4, 2, 1] }), 2) // [4]
 */
export function largerSliceCounts(job: JobSpec, current: number): number[] {
  const acc = job.accelerator;
  if (acc.kind !== "tpu" || !Array.isArray(acc.slices) || !job.scaleUp.enabled) return [];
  return acceptableSliceCounts(acc)
    .filter((n) => n > current)
    .sort((a, b) => a - b);
}

/**
 * When an attempt launched at `launchedAt` on `current` slices first looks for more: after
 * `scaleUp.afterSeconds`, as Levanter waits 12 h after each scaling; undefined when it cannot grow.
 */
export function firstScaleUpAt(job: JobSpec, current: number, launchedAt: number): number | undefined {
  return largerSliceCounts(job, current).length > 0
    ? launchedAt + job.scaleUp.afterSeconds * 1000
    : undefined;
}
