import type { ExecutionDetail } from "../ports.js";

// A job's chain of executions, each ended one naming the next (`{continuedAs}`). No server
// framework here: the TypeScript client walks the chain the same way as the API.

/** Most executions one job's history is read from, whatever its records say. */
export const MAX_JOB_EXECUTIONS = 1000;

/** The `continuedAs` in an execution's output text, if it names one. */
export function continuedAsIn(output: string | undefined): string | undefined {
  try {
    const next = (JSON.parse(output ?? "null") as { continuedAs?: unknown } | null)?.continuedAs;
    return typeof next === "string" ? next : undefined;
  } catch {
    return undefined;
  }
}

/** The `continuedAs` of an execution that ended by continuing the job in a new one. */
export function continuedAs(execution: Pick<ExecutionDetail, "status" | "output">): string | undefined {
  if (execution.status !== "SUCCEEDED") return undefined;
  return continuedAsIn(execution.output);
}

/**
 * Follow `continuedAs` from the execution `arn`, describing (and `visit`ing) each one in order,
 * and return the last: the one the job goes on in. Bounded: an execution already seen ends the
 * walk (outputs that name each other are not a chain), and so do {@link MAX_JOB_EXECUTIONS}.
 */
export async function followContinuations(
  describe: (arn: string) => Promise<ExecutionDetail | undefined>,
  arn: string,
  visit?: (arn: string, execution: ExecutionDetail | undefined) => Promise<void> | void,
): Promise<{ arn: string; execution: ExecutionDetail | undefined }> {
  const seen = new Set<string>();
  for (;;) {
    seen.add(arn);
    const execution = await describe(arn);
    await visit?.(arn, execution);
    const next = execution && continuedAs(execution);
    if (!next || seen.has(next) || seen.size >= MAX_JOB_EXECUTIONS) return { arn, execution };
    arn = next;
  }
}
