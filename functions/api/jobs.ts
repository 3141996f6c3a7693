import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { hasNameCharactersOnly } from "../../core/execution-name.js";
import { safeParseJobSpec } from "../../core/job-spec.js";
import type { JobStatus } from "../../core/job-status.js";
import { attemptStore, keys } from "../attempts.js";
import type { AgentConnector, Clock, ExecutionsApi, ResultsStore, TaskTokens } from "../ports.js";
import { redeliverOutcome } from "../resolution.js";
import {
  ApiProblem,
  answerUnknownRoutes,
  apiError as err,
  inputTooLarge,
  issue,
  jsonOnError,
  MAX_EXECUTION_INPUT_BYTES,
  parseParams,
  startRefusal,
} from "./errors.js";
import { startOnce } from "./idempotency.js";
import { EXECUTION_STATUSES, jobHistory, jobIdOf, lastExecution, listJobs } from "./job-executions.js";
import { executionArnOf } from "./job-id.js";

export { EXECUTION_STATUSES } from "./job-executions.js";

import { openApiDocument } from "./openapi.js";
import { signatureProblem } from "./signature.js";

export type { ApiError } from "./errors.js";
export { jobHistory } from "./job-executions.js";
export { executionArnOf } from "./job-id.js";

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
  /** Where internal errors go (one line each); stderr by default. */
  log?: ((line: string) => void) | undefined;
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
  // A job that ended has its hosts in its status: its record and host ends are not read again.
  const live = n > 0 && !final?.hosts;
  const record = live ? await attempts.record(jobId, n) : undefined;
  const ends = live ? await attempts.hostEnds(jobId, n) : new Map();
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

/** A job id as a path parameter: an execution name. */
export const JobIdParamsSchema = z.object({
  id: z
    .string()
    .min(1)
    .max(80)
    .refine(hasNameCharactersOnly, {
      params: { expected: "an execution name: no whitespace, control or special characters" },
    }),
});

/** An empty query parameter is an absent one (`?status=` from a form). */
const optional = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === "" ? undefined : v), schema.optional());

/** `GET /v1/jobs`'s query. */
export const ListQuerySchema = z.object({
  limit: optional(
    z
      .string()
      .regex(/^[0-9]{1,7}$/, "a whole number from 1 to 1000")
      .transform(Number)
      .pipe(z.int().min(1).max(1000)),
  ).transform((v) => v ?? 50),
  status: optional(z.enum(EXECUTION_STATUSES)),
  next: optional(z.string().max(1024)),
});

/** `GET /v1/jobs/:id/logs`'s query: which hosts, and how much of each one's output. */
export const LogsQuerySchema = z.object({
  slice: optional(z.string().max(300)),
  host: optional(z.string().regex(/^[0-9]{1,7}$/, "a host index (a whole number)")),
  maxBytes: optional(
    z
      .string()
      .regex(/^[0-9]{1,8}$/, "a whole number of bytes from 1 to 1048576")
      .transform(Number)
      .pipe(
        z
          .int()
          .min(1)
          .max(1 << 20),
      ),
  ).transform((v) => v ?? 16_384),
});

/** The job `:id` names (a continuation's execution name names its job); 400 for a malformed one. */
export async function jobIdParam(
  deps: Pick<JobsApiDeps, "executions" | "stateMachineArn">,
  c: Context,
): Promise<string> {
  const { id } = parseParams(JobIdParamsSchema, { id: c.req.param("id") }, "InvalidJobId");
  return jobIdOf(deps, id);
}

/** The body of a job spec over Step Functions' limit on an execution's input: it could never start. */
const tooLargeBody = () =>
  err("PayloadTooLarge", `body over ${MAX_EXECUTION_INPUT_BYTES} bytes`, [
    issue(
      "(root)",
      `a body of at most ${MAX_EXECUTION_INPUT_BYTES} bytes`,
      `more than ${MAX_EXECUTION_INPUT_BYTES} bytes`,
    ),
  ]);

/**
 * The jobs API: `POST /v1/jobs` (signed webhook, idempotent by `Idempotency-Key`),
 * `GET /v1/jobs/:id`, `GET /v1/jobs` (paginated, one row per job) and `DELETE /v1/jobs/:id`
 * (cancel). Nothing is started unless the answer is 202. A continuation's execution name stands
 * for its job; every error answers `{code, message, issues}`, a path it does not serve 404
 * `NotFound` and a path it serves under another method 405 `MethodNotAllowed` (an app that
 * composes it sets `notFound(routeNotFound)` itself: see {@link answerUnknownRoutes}).
 */
export function createJobsApi(deps: JobsApiDeps): Hono {
  const app = new Hono();
  const attempts = attemptStore(deps.store);
  app.onError(jsonOnError(deps.log));

  app.get("/v1/openapi.json", (c) => c.json(openApiDocument(new URL(c.req.url).origin)));

  app.post(
    "/v1/jobs",
    async (c, next) => {
      const type = c.req.header("content-type") ?? "";
      if (!/^application\/json\s*(;|$)/i.test(type)) {
        return c.json(
          err("UnsupportedMediaType", `expected content-type application/json, got ${type || "none"}`),
          415,
        );
      }
      return next();
    },
    // Stops reading past the limit, whether the length is declared or the body is chunked.
    bodyLimit({ maxSize: MAX_EXECUTION_INPUT_BYTES, onError: (c) => c.json(tooLargeBody(), 413) }),
    async (c) => {
      const raw = await c.req.text();
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
            issue("(root)", "a JSON document", `text that does not parse: ${(e as Error).message}`),
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
            spec.issues.map(({ path, expected, got, message }) => ({ path, expected, got, message })),
          ),
          400,
        );
      }
      const input = JSON.stringify(spec.data);
      // A body under the limit can cross it once defaults are added.
      const tooLarge = inputTooLarge(input);
      if (tooLarge) return c.json(tooLarge, 413);
      const key = c.req.header("idempotency-key");
      if (key !== undefined && (key.length === 0 || key.length > 255)) {
        return c.json(err("InvalidIdempotencyKey", "Idempotency-Key: expected 1 to 255 characters"), 400);
      }
      // The key is claimed before anything starts: one job per key, whatever races it.
      const outcome = await startOnce(deps, { name: spec.data.name, input, key });
      if (outcome.kind === "refused") return c.json(startRefusal(outcome.error), 400);
      if (outcome.kind === "conflict") {
        const named = key === undefined ? "this job id" : `Idempotency-Key ${JSON.stringify(key)}`;
        return c.json(
          err("IdempotencyConflict", `${named} was used with another body (job ${outcome.jobId})`, [
            issue(
              key === undefined ? "(root)" : "Idempotency-Key",
              `the body first sent with this key (job ${outcome.jobId})`,
              "another body",
            ),
          ]),
          409,
        );
      }
      return c.json({ jobId: outcome.jobId, executionArn: outcome.executionArn }, 202);
    },
  );

  app.get("/v1/jobs", async (c) => {
    const q = parseParams(ListQuerySchema, c.req.query(), "InvalidQuery");
    let page: Awaited<ReturnType<typeof listJobs>>;
    try {
      page = await listJobs(deps, { maxResults: q.limit, nextToken: q.next, status: q.status });
    } catch (e) {
      if ((e as { name?: string }).name !== "InvalidToken") throw e;
      throw new ApiProblem(
        400,
        err("InvalidQuery", "next: not a token this list gave", [
          issue("next", "the `next` of an earlier page of this list", "a token it did not give"),
        ]),
      );
    }
    return c.json({
      jobs: page.jobs.map((j) => ({
        jobId: j.jobId,
        executionArn: j.executionArn,
        currentExecutionArn: j.currentExecutionArn,
        executionStatus: j.executionStatus,
        startedAt: j.startedAt?.toISOString(),
        stoppedAt: j.stoppedAt?.toISOString(),
      })),
      next: page.nextToken ?? null,
    });
  });

  app.get("/v1/jobs/:id", async (c) => {
    const jobId = await jobIdParam(deps, c);
    const view = await jobView(deps, jobId);
    if (!view) return c.json(err("JobNotFound", `no job ${jobId}`), 404);
    return c.json(view);
  });

  app.get("/v1/jobs/:id/status", async (c) => {
    const jobId = await jobIdParam(deps, c);
    const text = await deps.store.get(keys.status(jobId));
    if (text) return c.json(JSON.parse(text) as JobStatus);
    const view = await jobView(deps, jobId);
    if (!view) return c.json(err("JobNotFound", `no job ${jobId}`), 404);
    return c.json({ status: view.status, jobId, attempt: view.attempt, phase: view.phase }, 202);
  });

  app.get("/v1/jobs/:id/history", async (c) => {
    const jobId = await jobIdParam(deps, c);
    const current = await attempts.current(jobId);
    const first = executionArnOf(deps.stateMachineArn, jobId);
    if (!current && !(await deps.executions.describe(first)))
      return c.json(err("JobNotFound", `no job ${jobId}`), 404);
    return c.json({ jobId, ...(await jobHistory(deps, jobId, current?.executionArn)) });
  });

  app.get("/v1/jobs/:id/logs", async (c) => {
    const jobId = await jobIdParam(deps, c);
    const current = await attempts.current(jobId);
    if (!current) return c.json(err("JobNotFound", `no job ${jobId}`), 404);
    const { slice, host, maxBytes } = parseParams(LogsQuerySchema, c.req.query(), "InvalidQuery");
    const record = current.attempt > 0 ? await attempts.record(jobId, current.attempt) : undefined;
    const hosts = (record?.hosts ?? []).filter(
      (h) =>
        (slice === undefined || String(h.sliceIndex) === slice || h.sliceName === slice) &&
        (host === undefined || String(h.hostIndex) === host),
    );
    const logs = await Promise.all(
      hosts.map(async (h) => {
        try {
          if (!deps.agents) throw new Error("no agent access configured");
          // Only this job's run: a host that has moved on to another job keeps that job's output.
          const out = await deps.agents
            .agent(h.agent)
            .readOutput(maxBytes, { jobId, attempt: current.attempt });
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
    const jobId = await jobIdParam(deps, c);
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
      // An end decided first (every host exited 0, say, its send still on the way) stands: the
      // token gets that one, and CheckResults judges a cancel after a success too late.
      if (await attempts.decide(jobId, current.attempt, outcome)) {
        const token = await attempts.token(jobId, current.attempt);
        if (token) await deps.tokens.fail(token, "JobCancelled", JSON.stringify(outcome.error));
      } else {
        await redeliverOutcome(attempts, deps.tokens, jobId, current.attempt);
      }
    }
    return c.json({ jobId, cancelling: true }, 202);
  });

  return answerUnknownRoutes(app);
}
