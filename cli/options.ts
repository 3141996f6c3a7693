import { type ClusterPoolSpec, parseClusterSpec } from "../core/cluster-spec.js";
import { UsageError } from "./command.js";

/**
 * A `--cluster` value, parsed before anything is started: a bad spec is bad usage (exit 2), not a
 * failure of a stack already half up.
 *
 * @example
 * const pools = clusterOption(values.cluster ?? "v4-16x2");
 */
export function clusterOption(spec: string): ClusterPoolSpec[] {
  try {
    return parseClusterSpec(spec);
  } catch (e) {
    throw new UsageError(`--cluster: ${(e as Error).message}`);
  }
}

/**
 * A whole number from 1 to `max` given to `flag`, or `undefined` when the flag was not given.
 *
 * @example
 * const limit = positiveIntegerOption("--limit", values.limit, 1000); // "20" → 20; "0" → UsageError
 */
export function positiveIntegerOption(
  flag: string,
  text: string | undefined,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (text === undefined) return undefined;
  // Digits only: Number() would take "1e3", "0x10" or " 5 " too.
  const n = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max)
    throw new UsageError(`${flag}: expected a whole number from 1 to ${max}, got ${JSON.stringify(text)}`);
  return n;
}
