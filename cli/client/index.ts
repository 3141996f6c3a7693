import type { HistoryEvent } from "@aws-sdk/client-sfn";
import type { JobSpecInput } from "../../core/job-spec.js";
import type { JobStatus } from "../../core/job-status.js";
import { deserializeError } from "../../core/serialized-error.js";
import type { ResultsStore } from "../../functions/ports.js";
import { createHistoryFeed } from "./history-feed.js";
import { transientPollFailures } from "./poll-failures.js";
import { apiTransport, type SubmittedJob, sfnTransport, type Transport } from "./transport.js";

export {
  ApiUnreachable,
  apiTransport,
  GangwayApiError,
  IdempotencyConflict,
  ResultsNotFetched,
  type SubmittedJob,
  sfnTransport,
  type Transport,
} from "./transport.js";

/** Where the control plane is: its API, or the state machine directly through the SFN client. */
export type Connection =
  | { api: string; webhookSecret?: string | undefined; apiToken?: string | undefined }
  | {
      sfnEndpoint?: string | undefined;
      region?: string | undefined;
      stateMachineArn: string;
      /** Where results too large for an execution's output are read (see {@link sfnTransport}). */
      results?: Pick<ResultsStore, "get"> | undefined;
    }
  | { transport: Transport };

/** The accelerator of a job, as in a job spec. */
export type AcceleratorConfig = JobSpecInput["accelerator"];

/** What runs on every host. */
export type Workload = JobSpecInput["workload"];

/** Options common to every call: where, how often to look, what to report while waiting. */
export interface ExecuteOptions {
  connection: Connection;
  name?: string;
  flatten?: boolean;
  coordinatorPort?: number;
  timeouts?: JobSpecInput["timeouts"];
  /** Same key, same job: a retried call never starts a second one. */
  idempotencyKey?: string;
  pollMs?: number;
  onEvent?: (event: HistoryEvent) => void;
  signal?: AbortSignal;
}

function transportOf(c: Connection): Transport {
  if ("transport" in c) return c.transport;
  if ("api" in c) return apiTransport(c);
  return sfnTransport({
    endpoint: c.sfnEndpoint,
    region: c.region,
    stateMachineArn: c.stateMachineArn,
    results: c.results,
  });
}

/** Submit a job and wait for its JobStatus, reporting history events as they come. */
export async function runJob(
  spec: JobSpecInput,
  options: Pick<ExecuteOptions, "connection" | "idempotencyKey" | "pollMs" | "onEvent" | "signal">,
): Promise<JobStatus> {
  const transport = transportOf(options.connection);
  const job: SubmittedJob = await transport.submit(spec, { idempotencyKey: options.idempotencyKey });
  // The job's history spans its continued executions; the feed hands each event on once, in order.
  const feed = createHistoryFeed();
  const history = async () => (options.onEvent ? transport.history(job) : []);
  const report = (events: HistoryEvent[] | undefined) => {
    for (const e of feed(events ?? [])) options.onEvent?.(e);
  };
  const { look } = transientPollFailures(); // a look that fails for a busy service is tried at the next poll
  for (;;) {
    if (options.signal?.aborted) throw options.signal.reason ?? new Error("aborted");
    report(await look(history));
    const status = await look(() => transport.result(job));
    if (status) {
      // What happened between the last look and the end. The job has ended: a look that fails
      // now (a busy API) costs those events, never the status.
      report(await history().catch(() => undefined));
      return status;
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 250));
  }
}

function specOf(
  workload: Workload,
  accelerator: AcceleratorConfig,
  options: ExecuteOptions,
  retry: JobSpecInput["retry"],
): JobSpecInput {
  return {
    name: options.name ?? "gangway-job",
    accelerator,
    workload,
    retry,
    ...(options.flatten === undefined ? {} : { flatten: options.flatten }),
    ...(options.coordinatorPort === undefined ? {} : { coordinatorPort: options.coordinatorPort }),
    ...(options.timeouts === undefined ? {} : { timeouts: options.timeouts }),
  };
}

function resultsOrThrow(status: JobStatus): unknown {
  if (status.status === "SUCCEEDED") return status.result;
  if (status.error) throw deserializeError(status.error);
  throw new Error(`job ended ${status.status}`);
}

/**
 * The ancestors' `execute`: run `workload` once on one slice (no retries) and return its JobStatus.
 *
 * @example
 * const status = await execute({ command: ["python3", "train.py"] }, { kind: "tpu", type: "v4-8" }, { connection });
 */
export function execute(
  workload: Workload,
  accelerator: AcceleratorConfig,
  options: ExecuteOptions,
): Promise<JobStatus> {
  return runJob(specOf(workload, accelerator, options, { maxPreemptions: 0, maxFailures: 0 }), options);
}

/** The ancestors' `execute_resumable`: retry through preemptions and failures; results, or the error thrown. */
export async function executeResumable(
  workload: Workload,
  accelerator: AcceleratorConfig,
  options: ExecuteOptions & { maxRetriesPreemption?: number; maxRetriesFailure?: number },
): Promise<unknown> {
  const retry = {
    maxPreemptions: options.maxRetriesPreemption ?? 1_000_000,
    maxFailures: options.maxRetriesFailure ?? 10,
  };
  return resultsOrThrow(await runJob(specOf(workload, accelerator, options, retry), options));
}

/** The ancestors' `autoscale_execute`: across multi-slice TPUs (flexible counts allowed), once. */
export function autoscaleExecute(
  workload: Workload,
  accelerator: AcceleratorConfig,
  options: ExecuteOptions,
): Promise<JobStatus> {
  return execute(workload, accelerator, options);
}

/** The ancestors' `autoscale_execute_resumable`: multi-slice, with their retry defaults (1,000,000 / 10). */
export function autoscaleExecuteResumable(
  workload: Workload,
  accelerator: AcceleratorConfig,
  options: ExecuteOptions & { maxRetriesPreemption?: number; maxRetriesFailure?: number },
): Promise<unknown> {
  return executeResumable(workload, accelerator, options);
}

/**
 * Turn a workload into a callable that runs it on the accelerator with retries, as the
 * ancestors' decorators do. Extra arguments are appended to the command.
 *
 * @example
 * const train = withExecutor({ accelerator: { kind: "tpu", type: "v4-16", slices: 2 }, connection })({ command: ["python3", "train.py"] });
 * const results = await train("--steps", "100");
 */
export function withExecutor(
  config: ExecuteOptions & {
    accelerator: AcceleratorConfig;
    maxRetriesPreemption?: number;
    maxRetriesFailure?: number;
  },
) {
  return (workload: Workload) =>
    (...args: string[]) =>
      executeResumable({ ...workload, command: [...workload.command, ...args] }, config.accelerator, config);
}
