import { randomBytes } from "node:crypto";
import { DescribeExecutionCommand, type HistoryEvent, StartExecutionCommand } from "@aws-sdk/client-sfn";
import type { JobSpecInput } from "../../core/job-spec.js";
import type { JobStatus } from "../../core/job-status.js";
import { signBody } from "../../functions/api/signature.js";
import { createSfnClient, executionHistory } from "../../functions/clients/sfn.js";
import type { ResultsStore } from "../../functions/ports.js";

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
  history(job: SubmittedJob): Promise<HistoryEvent[]>;
}

/**
 * The results of a job too large for its execution's output are in the results store, and the
 * output names them (`{resultRef: {store, bytes}}`): read them there, or say plainly why not.
 */
export class ResultsNotFetched extends Error {
  override readonly name = "ResultsNotFetched";
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
 * Call the gangway API at `api`, signing job submissions with `webhookSecret` and sending
 * `apiToken` (a deployed stack's reads and cancels need it) as a bearer token.
 */
export function apiTransport(options: {
  api: string;
  webhookSecret?: string | undefined;
  apiToken?: string | undefined;
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
    const res = await doFetch(`${base}${path}`, { method, body: text, headers: h });
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
      const view = await request<{
        status: string;
        result?: unknown;
        error?: unknown;
        counters?: JobStatus["counters"];
      }>("GET", `/v1/jobs/${encodeURIComponent(job.jobId)}`);
      if (!["SUCCEEDED", "FAILED", "PREEMPTED", "ERROR", "CANCELLED"].includes(view.status)) return undefined;
      const full = await request<JobStatus>("GET", `/v1/jobs/${encodeURIComponent(job.jobId)}/status`);
      return full;
    },
    history: (job) =>
      request<{ events: HistoryEvent[] }>("GET", `/v1/jobs/${encodeURIComponent(job.jobId)}/history`).then(
        (r) => r.events,
      ),
  };
}

/** `{resultRef: {store: KEY}}` → KEY, for a result that travels as a reference. */
function resultRefKey(result: unknown): string | undefined {
  const ref = (result as { resultRef?: { store?: unknown } } | null)?.resultRef;
  return typeof ref?.store === "string" ? ref.store : undefined;
}

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
  const current = async (job: SubmittedJob): Promise<string> => {
    // A job continued in new executions: follow `continuedAs` to the last one.
    let arn = job.executionArn;
    for (let i = 0; i < 10_000; i++) {
      const d = await sfn.send(new DescribeExecutionCommand({ executionArn: arn }));
      const next =
        d.status === "SUCCEEDED"
          ? (JSON.parse(d.output ?? "{}") as { continuedAs?: string }).continuedAs
          : undefined;
      if (!next) return arn;
      arn = next;
    }
    return arn;
  };
  return {
    async submit(spec, o) {
      const name = `${String(spec.name).slice(0, 60)}-${o?.idempotencyKey ? o.idempotencyKey.replace(/[^A-Za-z0-9_-]/g, "").slice(0, 16) : randomBytes(4).toString("hex")}`;
      const out = await sfn.send(
        new StartExecutionCommand({
          stateMachineArn: options.stateMachineArn,
          name,
          input: JSON.stringify(spec),
        }),
      );
      return { jobId: name, executionArn: out.executionArn ?? "" };
    },
    async result(job) {
      const d = await sfn.send(new DescribeExecutionCommand({ executionArn: await current(job) }));
      if (d.status === "RUNNING") return undefined;
      const text = d.status === "SUCCEEDED" ? d.output : d.cause;
      let status: JobStatus;
      try {
        status = JSON.parse(text ?? "") as JobStatus;
      } catch {
        return {
          status: "ERROR",
          info: { name: job.jobId, jobId: job.jobId, state: "error", kind: "cpu" },
          counters: { attempts: 0, preemptions: 0, failures: 0 },
          error: {
            name: d.error ?? "ExecutionFailed",
            message: d.cause ?? d.status ?? "the execution ended without a status",
          },
        };
      }
      const key = status.status === "SUCCEEDED" ? resultRefKey(status.result) : undefined;
      if (key === undefined) return status;
      const where = `the results of ${job.jobId} are in the results store at ${key}`;
      if (!options.results)
        throw new ResultsNotFetched(`${where}: give the connection \`results\` (the store), or use the API`);
      const stored = await options.results.get(key);
      if (stored === undefined) throw new ResultsNotFetched(`${where}, but nothing is there`);
      return { ...status, result: JSON.parse(stored) as unknown };
    },
    history: async (job) => executionHistory(sfn, await current(job)),
  };
}
