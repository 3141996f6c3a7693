import { createHash } from "node:crypto";
import type { HistoryEvent } from "@aws-sdk/client-sfn";

/** The history events that end an execution. */
export const EXECUTION_ENDS: ReadonlySet<string> = new Set([
  "ExecutionSucceeded",
  "ExecutionFailed",
  "ExecutionAborted",
  "ExecutionTimedOut",
]);

/**
 * Which execution a run of events (from one `ExecutionStarted` to the next) is: its start's time
 * and input — each of a job's executions starts with an input of its own (the spec, then each
 * continuation's `{gangwayContinuation}` with its number) — and, for starts that look alike, how
 * many alike came before it in the list.
 */
function executionKeys(executions: HistoryEvent[][]): string[] {
  const alike = new Map<string, number>();
  return executions.map((events) => {
    const start = events[0]?.type === "ExecutionStarted" ? events[0] : undefined;
    const look = start
      ? createHash("sha256")
          .update(JSON.stringify([start.timestamp, start.executionStartedEventDetails?.input]))
          .digest("hex")
      : "";
    const n = alike.get(look) ?? 0;
    alike.set(look, n + 1);
    return `${look}#${n}`;
  });
}

/**
 * Takes a job's history as it grows — every execution's events in order, the first execution and
 * each continuation (the API's `/history`, or the SFN transport's) — and returns the events
 * not returned before. An execution's events are returned only once the one before it has ended:
 * a continuation starts while the execution it continues is still writing its last events, so
 * the merged list can grow in its middle, not only at its end. Executions are told apart by their
 * start, not by their place in the list: a list that leaves one out (a read that failed) repeats
 * nothing, and a new one is taken only right after the last one taken, once that one has ended.
 */
export function createHistoryFeed(): (events: HistoryEvent[]) => HistoryEvent[] {
  const taken = new Map<string, number>();
  let lastTaken: string | undefined;
  return (events) => {
    const executions: HistoryEvent[][] = [];
    for (const e of events) {
      if (e.type === "ExecutionStarted" || executions.length === 0) executions.push([]);
      executions.at(-1)?.push(e);
    }
    const keys = executionKeys(executions);
    const fresh: HistoryEvent[] = [];
    for (const [i, execution] of executions.entries()) {
      const key = keys[i] ?? "";
      const from = taken.get(key);
      if (from === undefined && keys[i - 1] !== lastTaken) break;
      fresh.push(...execution.slice(from ?? 0));
      taken.set(key, Math.max(from ?? 0, execution.length));
      if (from === undefined) lastTaken = key;
      if (!execution.some((e) => EXECUTION_ENDS.has(e.type ?? ""))) break;
    }
    return fresh;
  };
}
