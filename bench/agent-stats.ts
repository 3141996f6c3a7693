/** Small statistics helpers shared by the agent benchmarks. */

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

/** p50 / p99 of one round of samples. */
export function summarize(samples: readonly number[]): { p50: number; p99: number; n: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), n: sorted.length };
}

/** Median and spread (min–max) of one figure over several rounds. */
export function acrossRounds(values: readonly number[]): { median: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: percentile(sorted, 50), min: sorted[0] ?? Number.NaN, max: sorted.at(-1) ?? Number.NaN };
}

export const fmt = (ms: number) => `${ms.toFixed(2)}`;

/** One printed line: `label  median (min–max) unit over N rounds`. */
export function line(label: string, values: readonly number[], unit = "ms"): string {
  const s = acrossRounds(values);
  return `${label.padEnd(44)} ${fmt(s.median).padStart(9)} ${unit}  (spread ${fmt(s.min)}–${fmt(s.max)}, ${values.length} rounds)`;
}
