import { z } from "zod";
import { attemptStore } from "../attempts.js";
import { continuationName } from "../continue-execution/index.js";
import { mapLimit } from "../deps.js";
import type { ExecutionDetail, ExecutionSummary, ExecutionsApi, ResultsStore } from "../ports.js";
import { continuedAsIn, followContinuations, MAX_JOB_EXECUTIONS } from "./execution-chain.js";
import { executionArnOf } from "./job-id.js";

export { MAX_JOB_EXECUTIONS } from "./execution-chain.js";
export { executionArnOf } from "./job-id.js";

/**
 * A job's executions: the first is named after the job; each continuation is named
 * `continuationName(jobId, n)` and starts with `{gangwayContinuation}` as its input. Whether an
 * execution is a continuation is never told by its name's look alone: a job's own id can end in
 * `-c<digits>` (`train-c4718203`).
 */

/** Execution statuses Step Functions lists by. */
export const EXECUTION_STATUSES = [
  "RUNNING",
  "SUCCEEDED",
  "FAILED",
  "TIMED_OUT",
  "ABORTED",
  "PENDING_REDRIVE",
] as const;

/** What reading a job's executions needs. */
export interface JobExecutionsDeps {
  executions: ExecutionsApi;
  store: ResultsStore;
  stateMachineArn: string;
}

/** How many executions the list looks into at once. */
const LIST_FAN_OUT = 16;

/** Names that could be a continuation's; only the execution's input decides that they are. */
const MAYBE_CONTINUATION = /-c(\d+)$/;

/** The ARN of the `n`-th execution of job `jobId` (1: the first). */
const nthArn = (stateMachineArn: string, jobId: string, n: number) =>
  executionArnOf(stateMachineArn, n === 1 ? jobId : continuationName(jobId, n));

const ContinuationInputSchema = z.object({
  gangwayContinuation: z.object({ jobId: z.string(), history: z.object({ execution: z.int() }) }),
});

/** The job the execution named `name` continues, read from its input; undefined when it is a job's first. */
function continuedJob(name: string, execution: ExecutionDetail | undefined): string | undefined {
  if (execution?.input === undefined) return undefined;
  let input: unknown;
  try {
    input = JSON.parse(execution.input);
  } catch {
    return undefined;
  }
  const parsed = ContinuationInputSchema.safeParse(input);
  if (!parsed.success) return undefined;
  const { jobId, history } = parsed.data.gangwayContinuation;
  return continuationName(jobId, history.execution + 1) === name ? jobId : undefined;
}

/** The job execution `e` continues, or undefined when it is a job's first execution (or unknown). */
async function jobContinuedBy(executions: ExecutionsApi, e: ExecutionSummary): Promise<string | undefined> {
  if (!MAYBE_CONTINUATION.test(e.name)) return undefined;
  return continuedJob(e.name, await executions.describe(e.executionArn));
}

/** The job `id` names: itself, or the job whose continuation's execution is named `id`. */
export async function jobIdOf(deps: Pick<JobExecutionsDeps, "executions" | "stateMachineArn">, id: string) {
  const executionArn = executionArnOf(deps.stateMachineArn, id);
  return (await jobContinuedBy(deps.executions, { executionArn, name: id, status: "" })) ?? id;
}

/**
 * The execution job's `arn` goes on in: itself, or the last of the executions it continued as.
 * A continued execution ends SUCCEEDED; that is not the job's end, even where the job's record
 * still names it (written before the record followed continuations).
 */
export function lastExecution(
  executions: ExecutionsApi,
  arn: string,
): Promise<{ arn: string; execution: ExecutionDetail | undefined }> {
  return followContinuations((a) => executions.describe(a), arn);
}

/** Which of job `jobId`'s executions `arn` is (2 for `<job>-c2` …): 1 unless it is exactly one of its continuations. */
function executionNumber(stateMachineArn: string, jobId: string, arn: string | undefined): number {
  const n = Number(MAYBE_CONTINUATION.exec(arn ?? "")?.[1] ?? "1");
  return n >= 2 && arn === nthArn(stateMachineArn, jobId, n) ? n : 1;
}

/** The `continuedAs` in the `ExecutionSucceeded` event of a history, if there is one. */
function continuedAsInHistory(events: readonly unknown[]): string | undefined {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i] as
      | { type?: string; executionSucceededEventDetails?: { output?: string } }
      | null
      | undefined;
    if (e?.type === "ExecutionSucceeded") return continuedAsIn(e.executionSucceededEventDetails?.output);
  }
  return undefined;
}

/**
 * Every execution of a job, in order, and all their history events: the first execution, then
 * each one it continued as (its `continuedAs`), or — while the last has not ended yet — each up
 * to the one the job's record names, if that is one of this job's continuations. At most
 * {@link MAX_JOB_EXECUTIONS} are read (`truncated` then says so).
 */
export async function jobHistory(
  deps: Pick<JobExecutionsDeps, "executions" | "stateMachineArn">,
  jobId: string,
  currentExecutionArn: string | undefined,
): Promise<{ executions: string[]; events: unknown[]; truncated?: true }> {
  const known = executionNumber(deps.stateMachineArn, jobId, currentExecutionArn);
  const executions: string[] = [];
  const events: unknown[] = [];
  let arn: string | undefined = nthArn(deps.stateMachineArn, jobId, 1);
  for (let n = 1; arn !== undefined && !executions.includes(arn); n++) {
    if (n > MAX_JOB_EXECUTIONS) return { executions, events, truncated: true };
    executions.push(arn);
    // A failed read fails the whole answer (a throttled one answers 429, and the caller asks
    // again): a list with an execution left out now and then would look to a follower like the
    // job's history had changed under it. One that is not there (past Step Functions' retention)
    // has no events, at every read alike.
    const page: unknown[] = await deps.executions.history(arn).catch((e: unknown) => {
      if ((e as { name?: string }).name === "ExecutionDoesNotExist") return [];
      throw e;
    });
    for (const e of page) events.push(e);
    arn = continuedAsInHistory(page) ?? (n < known ? nthArn(deps.stateMachineArn, jobId, n + 1) : undefined);
  }
  return { executions, events };
}

/** One job as the lists show it: its first execution, and the status of the one it goes on in. */
export interface JobRow {
  jobId: string;
  executionArn: string;
  currentExecutionArn: string;
  /** The status of the job's current execution. */
  executionStatus: string;
  startedAt?: Date | undefined;
  stoppedAt?: Date | undefined;
}

/** The row of the job execution `e` belongs to, where `e` is its first or (`continued`) a later one. */
async function jobRow(deps: JobExecutionsDeps, e: ExecutionSummary, continued: string | undefined) {
  const jobId = continued ?? e.name;
  let current: { arn: string; execution: ExecutionSummary } = { arn: e.executionArn, execution: e };
  // Only an execution that ended SUCCEEDED can have continued in another; one the job's record
  // says the job ended in did not (no describe then: a page can hold a thousand such jobs).
  if (e.status === "SUCCEEDED") {
    const record = await attemptStore(deps.store)
      .current(jobId)
      .catch(() => undefined);
    if (record?.state !== "done" || record.executionArn !== e.executionArn) {
      const last = await lastExecution(deps.executions, record?.executionArn ?? e.executionArn);
      if (last.execution) current = { arn: last.arn, execution: last.execution };
    }
  }
  const executionArn = executionArnOf(deps.stateMachineArn, jobId);
  const first = continued === undefined ? e : await deps.executions.describe(executionArn);
  return {
    jobId,
    executionArn,
    currentExecutionArn: current.arn,
    executionStatus: current.execution.status,
    startedAt: first?.startDate,
    stoppedAt: current.execution.stopDate,
  } satisfies JobRow;
}

/**
 * A page of jobs, one row per job with its current execution's status. Without a status filter a
 * job is listed where its first execution is (continuations are not jobs of their own); with one,
 * a matching continuation lists its job, and a job whose current execution does not match is left
 * out (a page can so hold fewer rows than `maxResults`; `nextToken` goes on).
 */
export async function listJobs(
  deps: JobExecutionsDeps,
  r: { maxResults: number; nextToken?: string | undefined; status?: string | undefined },
): Promise<{ jobs: JobRow[]; nextToken?: string | undefined }> {
  const page = await deps.executions.list({ stateMachineArn: deps.stateMachineArn, ...r });
  const rows = await mapLimit(page.executions, LIST_FAN_OUT, async (e) => {
    const continued = await jobContinuedBy(deps.executions, e);
    if (continued !== undefined && r.status === undefined) return undefined;
    return jobRow(deps, e, continued);
  });
  const jobs = new Map<string, JobRow>();
  for (const row of rows) {
    if (!row || jobs.has(row.jobId)) continue;
    if (r.status !== undefined && row.executionStatus !== r.status) continue;
    jobs.set(row.jobId, row);
  }
  return { jobs: [...jobs.values()], nextToken: page.nextToken };
}
