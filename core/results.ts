/** One host's result, tagged with where it ran. */
export interface HostResult<T = unknown> {
  sliceIndex: number;
  hostIndex: number;
  result: T;
}

/**
 * Order results as the ancestors return them: slice order, then host order. `flatten` gives one
 * list; otherwise one list per slice.
 *
 * @example
 * orderResults([{sliceIndex:1,hostIndex:0,result:"c"},{sliceIndex:0,hostIndex:1,result:"b"},{sliceIndex:0,hostIndex:0,result:"a"}], true)
 * // ["a", "b", "c"]
 */
export function orderResults<T>(results: readonly HostResult<T>[], flatten: boolean): T[] | T[][] {
  const sorted = [...results].sort((a, b) => a.sliceIndex - b.sliceIndex || a.hostIndex - b.hostIndex);
  if (flatten) return sorted.map((r) => r.result);
  const bySlice: T[][] = [];
  for (const r of sorted) {
    let slice = bySlice[r.sliceIndex];
    if (!slice) {
      slice = [];
      bySlice[r.sliceIndex] = slice;
    }
    slice.push(r.result);
  }
  // A slice index with no results still takes its place, as an empty list.
  return Array.from(bySlice, (s) => s ?? []);
}
