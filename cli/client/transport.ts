import { ExecutionDoesNotExist, type HistoryEvent } from "@aws-sdk/client-sfn";
import { type JobSpecInput, parseJobSpec } from "../../core/job-spec.js";
import { JOB_STATUSES, type JobStatus } from "../../core/job-status.js";
import { followContinuations } from "../../functions/api/execution-chain.js";
import { executionArnOf, jobIdFor } from "../../functions/api/job-id.js";
import { signBody } from "../../functions/api/signature.js";
import { createSfnClient, createSfnExecutionsApi, executionHistory } from "../../functions/clients/sfn.js";
import type { ExecutionDetail, ResultsStore } from "../../functions/ports.js";

/** A job in flight: its id, and how it stands when asked. */
export interface SubmittedJob {
  jobId: string;
  executionArn: string;
}

/** What the client does, whichever way it reaches the control plane. */
export interface Transport {
  submit(spec: JobSpecInput, options?: { idempotencyKey?: string | undefined }): Promise<SubmittedJob>;
  /** The final JobStatus, or `undefined` while the job runs. */
  result(job: SubmittedJob): Promise<JobStatus | undefined>;
  /** The job's history: every execution's events, the first one's and each continuation's, in order. */
  history(job: SubmittedJob): Promise<HistoryEvent[]>;
}

/**
 * The results of a job too large for its execution's output are in the results store, and the
 * output names them (`{resultRef: {store, bytes}}`): read them there, or say plainly why not.
 */
export class ResultsNotFetched extends Error {
  override readonly name = "ResultsNotFetched";
}

/** An idempotency key used again with another job spec: the job it named is not this one. */
export class IdempotencyConflict extends Error {
  override readonly name = "IdempotencyConflict";
}

/** A failed API call: the HTTP status and the `{code, message, issues}` body. */
export class GangwayApiError extends Error {
  override readonly name = "GangwayApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues: Array<{ path: string; message: string }> = [],
  ) {
    super(message);
  }
}

/**
 * The API did not answer at all — nothing listens there (a stack that has stopped, a stale
 * ready file), or the network is in the way — as opposed to a refusal ({@link GangwayApiError}).
 */
export class ApiUnreachable extends Error {
  override readonly name = "ApiUnreachable";
  constructor(
    readonly url: string,
    /** The system's error code (`ECONNREFUSED`, `ENOTFOUND` …), when there is one. */
    readonly code: string | undefined,
    hint: string,
    cause: unknown,
  ) {
    super(`cannot reach the API at ${url}${code ? ` (${code})` : ""} — ${hint}`, { cause });
  }
}

/**
 * The system error code under fetch's `TypeError: fetch failed`: its cause's `code`, or that of
 * the first of its causes (a host name with several addresses fails with an AggregateError).
 */
export function networkErrorCode(error: unknown): string | undefined {
  for (let e = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const o = e as { code?: unknown; errors?: unknown };
    if (typeof o.code === "string") return o.code;
    const first = Array.isArray(o.errors) ? (o.errors[0] as { code?: unknown } | undefined) : undefined;
    if (typeof first?.code === "string") return first.code;
  }
  return undefined;
}

/** Whether `error` is an abort (a signal that fired), which is not the API being away. */
const isAbort = (error: unknown) =>
  (error as { name?: string } | null)?.name === "AbortError" ||
  (error as { name?: string } | null)?.name === "TimeoutError";

/**
 * Call the gangway API at `api`, signing job submissions with `webhookSecret` and sending
 * `apiToken` (a deployed stack's reads and cancels need it) as a bearer token. An API that does
 * not answer is an {@link ApiUnreachable} ending in `unreachableHint` (say where the URL came from).
 */
export function apiTransport(options: {
  api: string;
  webhookSecret?: string | undefined;
  apiToken?: string | undefined;
  unreachableHint?: string | undefined;
  fetch?: typeof fetch;
}): Transport & {
  request<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
} {
  const doFetch = options.fetch ?? fetch;
  const base = options.api.replace(/\/+$/, "");
  async function request<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const h: Record<string, string> = { ...headers };
    if (options.apiToken) h.authorization = `Bearer ${options.apiToken}`;
    if (text !== undefined) {
      h["content-type"] = "application/json";
      if (options.webhookSecret) {
        const ts = String(Math.floor(Date.now() / 1000));
        h["x-gangway-timestamp"] = ts;
        h["x-gangway-signature"] = signBody(options.webhookSecret, ts, text);
      }
    }
    let res: Response;
    try {
      res = await doFetch(`${base}${path}`, { method, body: text, headers: h });
    } catch (e) {
      if (isAbort(e)) throw e;
      throw new ApiUnreachable(base, networkErrorCode(e), options.unreachableHint ?? "is it running?", e);
    }
    const answer = (await res.json().catch(() => ({}))) as {
      code?: string;
      message?: string;
      issues?: Array<{ path: string; message: string }>;
    };
    if (!res.ok)
      throw new GangwayApiError(
        res.status,
        answer.code ?? `HTTP${res.status}`,
        answer.message ?? res.statusText,
        answer.issues ?? [],
      );
    return answer as T;
  }
  return {
    request,
    submit: (spec, o) =>
      request<SubmittedJob>(
        "POST",
        "/v1/jobs",
        spec,
        o?.idempotencyKey ? { "idempotency-key": o.idempotencyKey } : {},
      ),
    async result(job) {
      const id = encodeURIComponent(job.jobId);
      const view = await request<{
        status: string;
        currentExecutionArn?: string;
        counters?: JobStatus["counters"];
      }>("GET", `/v1/jobs/${id}`);
      if (view.status === "RUNNING" || view.status === "PENDING") return undefined;
      if (isJobStatusName(view.status)) {
        const full = await request<unknown>("GET", `/v1/jobs/${id}/status`);
        if (isJobStatus(full)) return full;
      }
      // Stopped outside gangway (StopExecution: ABORTED; TIMED_OUT), or failed before gangway
      // wrote a status: no JobStatus will ever come, so waiting for one would never end.
      return endedWithoutStatus(job, view.currentExecutionArn ?? job.executionArn, view.status, {
        counters: view.counters,
      });
    },
    history: (job) =>
      request<{ events: HistoryEvent[] }>("GET", `/v1/jobs/${encodeURIComponent(job.jobId)}/history`).then(
        (r) => r.events,
      ),
  };
}

const isJobStatusName = (s: unknown): s is JobStatus["status"] =>
  (JOB_STATUSES as readonly unknown[]).includes(s);

/** Whether `v` is a whole JobStatus (not the API's 202 "not yet" answer, nor some other JSON). */
function isJobStatus(v: unknown): v is JobStatus {
  const o = v as Partial<Record<string, unknown>> | null;
  return (
    typeof o === "object" &&
    o !== null &&
    isJobStatusName(o.status) &&
    typeof o.info === "object" &&
    typeof o.counters === "object"
  );
}

/**
 * The JobStatus of a job whose execution ended without one: `ERROR`, named after how it ended
 * (`ExecutionAborted`, `ExecutionTimedOut`, else the execution's error).
 */
function endedWithoutStatus(
  job: SubmittedJob,
  executionArn: string,
  executionStatus: string,
  detail: { error?: string | undefined; cause?: string | undefined; counters?: JobStatus["counters"] },
): JobStatus {
  const how: Record<string, string> = {
    ABORTED: "ExecutionAborted",
    TIMED_OUT: "ExecutionTimedOut",
  };
  const why =
    executionStatus === "ABORTED"
      ? " (stopped outside gangway)"
      : executionStatus === "TIMED_OUT"
        ? " (its TimeoutSeconds ran out)"
        : "";
  return {
    status: "ERROR",
    info: { name: job.jobId, jobId: job.jobId, state: "error", kind: "cpu", executionArn },
    counters: detail.counters ?? { attempts: 0, preemptions: 0, failures: 0 },
    error: {
      name: detail.error || how[executionStatus] || "ExecutionFailed",
      message: `execution ${executionArn} ended ${executionStatus}${why} without a job status${detail.cause ? `: ${detail.cause}` : ""}`,
    },
  };
}

/** `{resultRef: {store: KEY}}` → KEY, for a result that travels as a reference. */
function resultRefKey(result: unknown): string | undefined {
  const ref = (result as { resultRef?: { store?: unknown } } | null)?.resultRef;
  return typeof ref?.store === "string" ? ref.store : undefined;
}

/** How many jobs' ended executions an SFN transport keeps the histories of. */
const MAX_CACHED_JOBS = 16;

/**
 * Reach the state machine directly with the official SFN client (AWS, LocalStack or embedded).
 * `results`: the results store (the embedded stack's `<stateDir>/results` directory, or the
 * deployment's bucket), where results too large for the execution's output are read; without
 * it such a job's result is a {@link ResultsNotFetched} error.
 */
export function sfnTransport(options: {
  endpoint?: string | undefined;
  region?: string | undefined;
  stateMachineArn: string;
  results?: Pick<ResultsStore, "get"> | undefined;
}): Transport {
  const sfn = createSfnClient({ endpoint: options.endpoint, region: options.region });
  const executions = createSfnExecutionsApi(sfn);
  // Per job (its first execution's ARN), the executions of it that ended, with their history,
  // which no longer changes. Only the jobs looked at last are kept: a transport shared for long
  // follows many jobs, and a job no one follows any more has nothing to gain from its cache.
  const ended = new Map<string, Map<string, { execution: ExecutionDetail; events: HistoryEvent[] }>>();
  const endedOf = (job: SubmittedJob) => {
    const known = ended.get(job.executionArn) ?? new Map();
    ended.delete(job.executionArn);
    ended.set(job.executionArn, known);
    for (const old of ended.keys()) {
      if (ended.size <= MAX_CACHED_JOBS) break;
      ended.delete(old);
    }
    return known;
  };
  /** Describe `arn`, as cached where it had ended. */
  const describeIn =
    (known: Map<string, { execution: ExecutionDetail }>) =>
    async (arn: string): Promise<ExecutionDetail | undefined> =>
      known.get(arn)?.execution ?? (await executions.describe(arn));
  return {
    async submit(spec, o) {
      const key = o?.idempotencyKey || undefined; // an empty key is none, as the API client sends it
      // The execution input the API would start the job with: the spec checked, defaults filled
      // in. A key used through both then names the same job with the same input, not a conflict.
      const parsed = parseJobSpec(spec);
      const name = jobIdFor(parsed.name, key);
      const input = JSON.stringify(parsed);
      try {
        const { executionArn } = await executions.start({
          stateMachineArn: options.stateMachineArn,
          name,
          input,
        });
        return { jobId: name, executionArn };
      } catch (e) {
        if ((e as { name?: string }).name !== "ExecutionAlreadyExists" || key === undefined) throw e;
        // The same key was used before and that job has ended (while it runs, StartExecution
        // answers it again): it is this job, if the spec is the same.
        const executionArn = executionArnOf(options.stateMachineArn, name);
        const existing = await executions.describe(executionArn);
        // The same spec parses to the same text: the API compares inputs so too.
        if (existing?.input !== input)
          throw new IdempotencyConflict(
            `idempotency key ${JSON.stringify(key)} was used for another job spec (job ${name})`,
          );
        return { jobId: name, executionArn };
      }
    },
    async result(job) {
      const last = await followContinuations(describeIn(endedOf(job)), job.executionArn);
      const d = last.execution;
      if (!d)
        throw new ExecutionDoesNotExist({
          message: `Execution Does Not Exist: '${last.arn}'`,
          $metadata: {},
        });
      if (d.status === "RUNNING") return undefined;
      let status: unknown;
      try {
        status = JSON.parse((d.status === "SUCCEEDED" ? d.output : d.cause) ?? "");
      } catch {
        status = undefined;
      }
      if (!isJobStatus(status))
        return endedWithoutStatus(job, last.arn, d.status, { error: d.error, cause: d.cause });
      const key = status.status === "SUCCEEDED" ? resultRefKey(status.result) : undefined;
      if (key === undefined) return status;
      const where = `the results of ${job.jobId} are in the results store at ${key}`;
      if (!options.results)
        throw new ResultsNotFetched(`${where}: give the connection \`results\` (the store), or use the API`);
      const stored = await options.results.get(key);
      if (stored === undefined) throw new ResultsNotFetched(`${where}, but nothing is there`);
      return { ...status, result: JSON.parse(stored) as unknown };
    },
    async history(job) {
      const known = endedOf(job);
      const events: HistoryEvent[] = [];
      await followContinuations(describeIn(known), job.executionArn, async (arn, execution) => {
        const cached = known.get(arn);
        if (cached) {
          events.push(...cached.events);
          return;
        }
        // Described before it is read: an execution that had ended then has its whole history.
        const history = await executionHistory(sfn, arn);
        events.push(...history);
        if (execution && execution.status !== "RUNNING") known.set(arn, { execution, events: history });
      });
      return events;
    },
  };
}
