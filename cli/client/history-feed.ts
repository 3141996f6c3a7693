import type { HistoryEvent } from "@aws-sdk/client-sfn";

/** The history events that end an execution. */
export const EXECUTION_ENDS: ReadonlySet<string> = new Set([
  "ExecutionSucceeded",
  "ExecutionFailed",
  "ExecutionAborted",
  "ExecutionTimedOut",
]);

/**
 * Takes a job's history as it grows — every execution's events in order, the first execution and
 * each continuation (the API's `/history`, or the SFN transport's) — and returns the events
 * not returned before. An execution's events are returned only once the one before it has ended:
 * a continuation starts while the execution it continues is still writing its last events, so
 * the merged list can grow in its middle, not only at its end.
 */
export function createHistoryFeed(): (events: HistoryEvent[]) => HistoryEvent[] {
  const taken: number[] = [];
  return (events) => {
    const executions: HistoryEvent[][] = [];
    for (const e of events) {
      if (e.type === "ExecutionStarted" || executions.length === 0) executions.push([]);
      executions.at(-1)?.push(e);
    }
    const fresh: HistoryEvent[] = [];
    for (const [i, execution] of executions.entries()) {
      const from = taken[i] ?? 0;
      fresh.push(...execution.slice(from));
      taken[i] = Math.max(from, execution.length);
      if (!execution.some((e) => EXECUTION_ENDS.has(e.type ?? ""))) break;
    }
    return fresh;
  };
}
