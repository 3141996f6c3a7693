import { createHash, randomBytes } from "node:crypto";
import { Hono } from "hono";
import { z } from "zod";
import { safeParseJobSpec } from "../../core/job-spec.js";
import type { JobStatus } from "../../core/job-status.js";
import { attemptStore, keys } from "../attempts.js";
import { continuationName } from "../continue-execution/index.js";
import type {
  AgentConnector,
  Clock,
  ExecutionDetail,
  ExecutionsApi,
  ResultsStore,
  TaskTokens,
} from "../ports.js";
import { openApiDocument } from "./openapi.js";
import { signatureProblem } from "./signature.js";

/** Largest job spec the webhook takes: Step Functions' own limit on an execution's input. */
export const MAX_BODY_BYTES = 256 * 1024;

/** What the jobs API needs. */
export interface JobsApiDeps {
  executions: ExecutionsApi;
  store: ResultsStore;
  tokens: TaskTokens;
  clock: Clock;
  stateMachineArn: string;
  /** Reaches hosts' agents, for `GET /v1/jobs/:id/logs`. */
  agents?: AgentConnector | undefined;
  /** HMAC secret of `POST /v1/jobs`; without one, unsigned requests are accepted. */
  webhookSecret?: string | undefined;
}

/** The error body every edge answers. */
export interface ApiError {
  code: string;
  message: string;
  issues: Array<{ path: string; message: string }>;
}
const err = (code: string, message: string, issues: ApiError["issues"] = []): ApiError => ({
  code,
  message,
  issues,
});

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

const IdempotencyRecordSchema = z.object({
  bodyHash: z.string(),
  jobId: z.string(),
  executionArn: z.string(),
});

/** The execution ARN of job `jobId` (its first execution) under `stateMachineArn`. */
export function executionArnOf(stateMachineArn: string, jobId: string): string {
  return `${stateMachineArn.replace(":stateMachine:", ":execution:")}:${jobId}`;
}

/**
 * Every execution of a job, in order, and all their history events: the first execution and each
 * continuation (`<job>-c2` …) up to the current one.
 */
export async function jobHistory(
  deps: Pick<JobsApiDeps, "executions" | "stateMachineArn">,
  jobId: string,
  currentExecutionArn: string | undefined,
): Promise<{ executions: string[]; events: unknown[] }> {
  const executions = [executionArnOf(deps.stateMachineArn, jobId)];
  const n = Number(/-c(\d+)$/.exec(currentExecutionArn ?? "")?.[1] ?? "1");
  for (let i = 2; i <= n; i++)
    executions.push(executionArnOf(deps.stateMachineArn, continuationName(jobId, i)));
  const events: unknown[] = [];
  for (const arn of executions) events.push(...(await deps.executions.history(arn).catch(() => [])));
  return { executions, events };
}

/** The `continuedAs` of an execution that ended by continuing the job in a new one. */
function continuedAs(execution: ExecutionDetail): string | undefined {
  if (execution.status !== "SUCCEEDED") return undefined;
  try {
    const next = (JSON.parse(execution.output ?? "null") as { continuedAs?: unknown } | null)?.continuedAs;
    return typeof next === "string" ? next : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The execution job's `arn` goes on in: itself, or the last of the executions it continued as.
 * A continued execution ends SUCCEEDED; that is not the job's end, even where the job's record
 * still names it (written before the record followed continuations).
 */
async function lastExecution(
  executions: ExecutionsApi,
  arn: string,
): Promise<{ arn: string; execution: ExecutionDetail | undefined }> {
  let execution = await executions.describe(arn);
  let next = execution && continuedAs(execution);
  while (next) {
    arn = next;
    execution = await executions.describe(arn);
    next = execution && continuedAs(execution);
  }
  return { arn, execution };
}

/** A job as `GET /v1/jobs/:id` shows it. */
export async function jobView(
  deps: Pick<JobsApiDeps, "executions" | "store" | "stateMachineArn">,
  jobId: string,
) {
  const attempts = attemptStore(deps.store);
  const current = await attempts.current(jobId);
  const firstArn = executionArnOf(deps.stateMachineArn, jobId);
  const last = await lastExecution(deps.executions, current?.executionArn ?? firstArn);
  const execution = last.execution;
  if (!execution && !current) return undefined;
  const finalText = await deps.store.get(keys.status(jobId));
  const final = finalText ? (JSON.parse(finalText) as JobStatus) : undefined;
  const n = current?.attempt ?? 0;
  const record = n > 0 ? await attempts.record(jobId, n) : undefined;
  const ends = n > 0 ? await attempts.hostEnds(jobId, n) : new Map();
  const hosts =
    final?.hosts ??
    (record?.hosts ?? []).map((h) => {
      const end = ends.get(`${h.sliceIndex}-${h.hostIndex}`);
      return {
        sliceIndex: h.sliceIndex,
        sliceName: h.sliceName,
        hostIndex: h.hostIndex,
        address: h.address,
        state: end
          ? end.cancelled
            ? "cancelled"
            : end.kind
          : current?.state === "running"
            ? "running"
            : (current?.state ?? "pending"),
        exitCode: end?.exitCode ?? null,
        signal: end?.signal ?? null,
      };
    });
  const status =
    final?.status ?? (execution?.status === "RUNNING" ? "RUNNING" : (execution?.status ?? "PENDING"));
  return {
    jobId,
    status,
    executionArn: firstArn,
    currentExecutionArn: last.arn,
    attempt: n,
    phase: current?.state ?? "scaling",
    counters: final?.counters,
    startedAt: execution?.startDate?.toISOString(),
    hosts,
    result: final?.status === "SUCCEEDED" ? final.result : undefined,
    error: final && final.status !== "SUCCEEDED" ? final.error : undefined,
  };
}

/**
 * The jobs API: `POST /v1/jobs` (signed webhook, idempotent by `Idempotency-Key`),
 * `GET /v1/jobs/:id`, `GET /v1/jobs` (paginated) and `DELETE /v1/jobs/:id` (cancel). Nothing is
 * started unless the answer is 202.
 */
export function createJobsApi(deps: JobsApiDeps): Hono {
  const app = new Hono();
  const attempts = attemptStore(deps.store);

  app.get("/v1/openapi.json", (c) => c.json(openApiDocument(new URL(c.req.url).origin)));

  app.post("/v1/jobs", async (c) => {
    const type = c.req.header("content-type") ?? "";
    if (!/^application\/json\s*(;|$)/i.test(type)) {
      return c.json(
        err("UnsupportedMediaType", `expected content-type application/json, got ${type || "none"}`),
        415,
      );
    }
    const declared = Number(c.req.header("content-length") ?? "0");
    if (declared > MAX_BODY_BYTES)
      return c.json(err("PayloadTooLarge", `body of ${declared} bytes exceeds ${MAX_BODY_BYTES}`), 413);
    const raw = await c.req.text();
    if (Buffer.byteLength(raw) > MAX_BODY_BYTES) {
      return c.json(
        err("PayloadTooLarge", `body of ${Buffer.byteLength(raw)} bytes exceeds ${MAX_BODY_BYTES}`),
        413,
      );
    }
    if (deps.webhookSecret !== undefined) {
      const problem = signatureProblem(
        deps.webhookSecret,
        { timestamp: c.req.header("x-gangway-timestamp"), signature: c.req.header("x-gangway-signature") },
        raw,
        Math.floor(deps.clock.now() / 1000),
      );
      if (problem) return c.json(err("Unauthorized", problem), 401);
    }
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch (e) {
      return c.json(
        err("InvalidJson", "body is not valid JSON", [
          { path: "(root)", message: `(root): ${(e as Error).message}` },
        ]),
        400,
      );
    }
    const spec = safeParseJobSpec(body);
    if (!spec.success) {
      return c.json(
        err(
          "InvalidJobSpec",
          `${spec.issues.length} problem(s) in the job spec`,
          spec.issues.map(({ path, message }) => ({ path, message })),
        ),
        400,
      );
    }
    const input = JSON.stringify(spec.data);
    const key = c.req.header("idempotency-key");
    if (key !== undefined && (key.length === 0 || key.length > 255)) {
      return c.json(err("InvalidIdempotencyKey", "Idempotency-Key: expected 1 to 255 characters"), 400);
    }
    const bodyHash = sha256(input);
    const recordKey = key === undefined ? undefined : `idempotency/${sha256(key)}.json`;
    if (recordKey) {
      const known = await deps.store.get(recordKey);
      if (known) {
        const rec = IdempotencyRecordSchema.parse(JSON.parse(known));
        if (rec.bodyHash !== bodyHash)
          return c.json(err("IdempotencyConflict", "this Idempotency-Key was used with another body"), 409);
        return c.json({ jobId: rec.jobId, executionArn: rec.executionArn }, 202);
      }
    }
    const suffix = key === undefined ? randomBytes(4).toString("hex") : sha256(key).slice(0, 12);
    const jobId = `${spec.data.name.slice(0, 80 - suffix.length - 1)}-${suffix}`;
    let executionArn: string;
    try {
      executionArn = (
        await deps.executions.start({ stateMachineArn: deps.stateMachineArn, name: jobId, input })
      ).executionArn;
    } catch (e) {
      if ((e as { name?: string }).name !== "ExecutionAlreadyExists") throw e;
      // The same key and body were started before and have finished: that is the job.
      executionArn = executionArnOf(deps.stateMachineArn, jobId);
      const existing = await deps.executions.describe(executionArn);
      if (existing?.input !== input)
        return c.json(err("IdempotencyConflict", "this Idempotency-Key was used with another body"), 409);
    }
    if (
      recordKey &&
      !(await deps.store.create(recordKey, JSON.stringify({ bodyHash, jobId, executionArn })))
    ) {
      const rec = IdempotencyRecordSchema.parse(JSON.parse((await deps.store.get(recordKey)) ?? "{}"));
      if (rec.bodyHash !== bodyHash)
        return c.json(err("IdempotencyConflict", "this Idempotency-Key was used with another body"), 409);
    }
    return c.json({ jobId, executionArn }, 202);
  });

  app.get("/v1/jobs", async (c) => {
    const limit = Number(c.req.query("limit") ?? "50");
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      return c.json(
        err("InvalidQuery", "limit: expected 1 to 1000", [
          { path: "limit", message: `limit: expected 1 to 1000, got ${c.req.query("limit")}` },
        ]),
        400,
      );
    }
    const status = c.req.query("status");
    const page = await deps.executions.list({
      stateMachineArn: deps.stateMachineArn,
      maxResults: limit,
      nextToken: c.req.query("next") || undefined,
      status,
    });
    return c.json({
      jobs: page.executions.map((e) => ({
        jobId: e.name,
        executionArn: e.executionArn,
        executionStatus: e.status,
        startedAt: e.startDate?.toISOString(),
        stoppedAt: e.stopDate?.toISOString(),
      })),
      next: page.nextToken ?? null,
    });
  });

  app.get("/v1/jobs/:id", async (c) => {
    const view = await jobView(deps, c.req.param("id"));
    if (!view) return c.json(err("JobNotFound", `no job ${c.req.param("id")}`), 404);
    return c.json(view);
  });

  app.get("/v1/jobs/:id/status", async (c) => {
    const jobId = c.req.param("id");
    const text = await deps.store.get(keys.status(jobId));
    if (text) return c.json(JSON.parse(text) as JobStatus);
    const view = await jobView(deps, jobId);
    if (!view) return c.json(err("JobNotFound", `no job ${jobId}`), 404);
    return c.json({ status: view.status, jobId, attempt: view.attempt, phase: view.phase }, 202);
  });

  app.get("/v1/jobs/:id/history", async (c) => {
    const jobId = c.req.param("id");
    const current = await attempts.current(jobId);
    const first = executionArnOf(deps.stateMachineArn, jobId);
    if (!current && !(await deps.executions.describe(first)))
      return c.json(err("JobNotFound", `no job ${jobId}`), 404);
    return c.json({ jobId, ...(await jobHistory(deps, jobId, current?.executionArn)) });
  });

  app.get("/v1/jobs/:id/logs", async (c) => {
    const jobId = c.req.param("id");
    const current = await attempts.current(jobId);
    if (!current) return c.json(err("JobNotFound", `no job ${jobId}`), 404);
    const record = current.attempt > 0 ? await attempts.record(jobId, current.attempt) : undefined;
    const slice = c.req.query("slice");
    const host = c.req.query("host");
    const maxBytes = Math.min(Number(c.req.query("maxBytes") ?? "16384") || 16384, 1 << 20);
    const hosts = (record?.hosts ?? []).filter(
      (h) =>
        (slice === undefined || String(h.sliceIndex) === slice || h.sliceName === slice) &&
        (host === undefined || String(h.hostIndex) === host),
    );
    const logs = await Promise.all(
      hosts.map(async (h) => {
        try {
          if (!deps.agents) throw new Error("no agent access configured");
          const out = await deps.agents.agent(h.agent).readOutput(maxBytes);
          const stdout = out.stdout.toString("utf8");
          const stderr = out.stderr.toString("utf8");
          return {
            sliceIndex: h.sliceIndex,
            sliceName: h.sliceName,
            hostIndex: h.hostIndex,
            address: h.address,
            stdout,
            stderr,
          };
        } catch (e) {
          return {
            sliceIndex: h.sliceIndex,
            sliceName: h.sliceName,
            hostIndex: h.hostIndex,
            address: h.address,
            error: (e as Error).message,
          };
        }
      }),
    );
    return c.json({ jobId, attempt: current.attempt, hosts: logs });
  });

  app.delete("/v1/jobs/:id", async (c) => {
    const jobId = c.req.param("id");
    const current = await attempts.current(jobId);
    if (!current) {
      const execution = await deps.executions.describe(executionArnOf(deps.stateMachineArn, jobId));
      if (!execution) return c.json(err("JobNotFound", `no job ${jobId}`), 404);
      if (execution.status !== "RUNNING")
        return c.json(err("JobFinished", `job ${jobId} has already ended`), 409);
    }
    if (current?.state === "done") return c.json(err("JobFinished", `job ${jobId} has already ended`), 409);
    const reason = c.req.query("reason") ?? "cancelled through the API";
    await attempts.requestCancel(jobId, reason, deps.clock.now());
    // A running attempt is ended through its token; the machine tears it down and stops CANCELLED.
    if (current && current.attempt > 0) {
      const outcome = {
        kind: "failed" as const,
        at: deps.clock.now(),
        error: { name: "JobCancelled", message: `job ${jobId} cancelled: ${reason}` },
      };
      await attempts.decide(jobId, current.attempt, outcome);
      const token = await attempts.token(jobId, current.attempt);
      if (token) await deps.tokens.fail(token, "JobCancelled", JSON.stringify(outcome.error));
    }
    return c.json({ jobId, cancelling: true }, 202);
  });

  return app;
}
