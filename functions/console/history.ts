/** The fields of a history event the console and the CLI read (a subset of the SFN API's). */
export interface HistoryEventLike {
  type?: string;
  timestamp?: Date | string | number;
  stateEnteredEventDetails?: { name?: string; input?: string };
  stateExitedEventDetails?: { name?: string; output?: string };
  taskFailedEventDetails?: { error?: string; cause?: string };
  executionFailedEventDetails?: { error?: string; cause?: string };
  lambdaFunctionFailedEventDetails?: { error?: string; cause?: string };
  taskTimedOutEventDetails?: { error?: string; cause?: string };
}

/** Group history events by attempt: a new attempt begins each time ScaleSlices is entered anew. */
export function groupByAttempt<E extends HistoryEventLike>(
  events: readonly E[],
): Array<{ attempt: number; events: E[] }> {
  const groups: Array<{ attempt: number; events: E[] }> = [{ attempt: 0, events: [] }];
  let previous = "";
  for (const e of events) {
    const name = e.stateEnteredEventDetails?.name;
    if (name === "ScaleSlices" && previous !== "WaitForSlices" && previous !== "SlicesReady") {
      groups.push({ attempt: groups.length, events: [] });
    }
    if (name) previous = name;
    groups.at(-1)?.events.push(e);
  }
  return groups.filter((g) => g.events.length > 0);
}

/** The error and its message of a failure event, if it is one. */
export function failureOf(e: HistoryEventLike): { error: string; message: string } | undefined {
  const failed =
    e.taskFailedEventDetails ??
    e.executionFailedEventDetails ??
    e.lambdaFunctionFailedEventDetails ??
    e.taskTimedOutEventDetails;
  if (!failed) return undefined;
  let message = failed.cause ?? "";
  try {
    const parsed = JSON.parse(message) as {
      message?: string;
      errorMessage?: string;
      error?: { message?: string };
    };
    message = parsed.message ?? parsed.errorMessage ?? parsed.error?.message ?? message;
  } catch {
    // plain text
  }
  return { error: failed.error ?? "Error", message: message.split("\n")[0]?.slice(0, 500) ?? "" };
}

/** States entered, and the one entered last without leaving it (where the execution is now). */
export function visitedStates(events: readonly HistoryEventLike[]): {
  visited: Set<string>;
  current: string | undefined;
  failedIn: Set<string>;
} {
  const visited = new Set<string>();
  const failedIn = new Set<string>();
  let current: string | undefined;
  for (const e of events) {
    const entered = e.stateEnteredEventDetails?.name;
    if (entered) {
      visited.add(entered);
      current = entered;
    }
    if (e.stateExitedEventDetails?.name === current) current = undefined;
    if (failureOf(e) && current) failedIn.add(current);
  }
  return { visited, current, failedIn };
}
