import { z } from "zod";
import { EXECUTION_NAME_PATTERN } from "../../core/execution-name.js";
import { JobSpecSchema } from "../../core/job-spec.js";
import { JobStatusSchema } from "../../core/job-status.js";
import { EXECUTION_STATUSES } from "./job-executions.js";

const ErrorSchema = z.object({
  code: z.string(),
  message: z.string(),
  issues: z.array(
    z.object({
      path: z.string(),
      message: z.string(),
      expected: z.string().optional(),
      got: z.string().optional(),
    }),
  ),
});
const AcceptedSchema = z.object({ jobId: z.string(), executionArn: z.string() });
const JobViewSchema = z.object({
  jobId: z.string(),
  status: z.string(),
  executionArn: z.string(),
  currentExecutionArn: z.string(),
  attempt: z.int(),
  phase: z.string(),
  counters: z.object({ attempts: z.int(), preemptions: z.int(), failures: z.int() }).optional(),
  hosts: z.array(z.record(z.string(), z.unknown())),
  result: z.unknown().optional(),
  error: z.unknown().optional(),
});

const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: "output", unrepresentable: "any" });
const json = (s: z.ZodType, description: string) => ({
  description,
  content: { "application/json": { schema: schema(s) } },
});
const errors = {
  "400": json(ErrorSchema, "Bad JSON or job spec: every problem as {path, expected, got, message}"),
  "401": json(ErrorSchema, "Missing, malformed, wrong or stale signature"),
  "404": json(ErrorSchema, "No such job"),
};
/** What any route may answer when the engine or gangway itself fails. */
const serviceErrors = {
  "429": json(ErrorSchema, "Step Functions is throttling: try again"),
  "500": json(ErrorSchema, "A fault of gangway (InternalError)"),
  "503": json(ErrorSchema, "Step Functions is unavailable: try again"),
};
/** What the API takes as a job id (`JobIdParamsSchema`): an execution name (`llama3.1-8b` too). */
export const JOB_ID_PATTERN = EXECUTION_NAME_PATTERN;

/** A job id, or the execution name of one of its continuations (`<job>-c2` …). */
const jobId = {
  name: "id",
  in: "path",
  required: true,
  schema: { type: "string", minLength: 1, maxLength: 80, pattern: JOB_ID_PATTERN },
};

/** The OpenAPI 3.1 document of the API, generated from the same zod schemas the API validates with. */
export function openApiDocument(serverUrl?: string): Record<string, unknown> {
  return {
    openapi: "3.1.0",
    info: {
      title: "gangway",
      version: "1",
      description: "Launch and follow gang-scheduled multi-slice jobs that survive preemption.",
    },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    components: {
      securitySchemes: {
        signature: {
          type: "apiKey",
          in: "header",
          name: "X-Gangway-Signature",
          description:
            "sha256=<hex HMAC-SHA256(secret, X-Gangway-Timestamp + '.' + raw body)>, within 5 minutes of X-Gangway-Timestamp",
        },
      },
    },
    paths: {
      "/v1/jobs": {
        post: {
          summary: "Submit a job",
          security: [{ signature: [] }],
          parameters: [
            { name: "X-Gangway-Timestamp", in: "header", required: true, schema: { type: "string" } },
            {
              name: "Idempotency-Key",
              in: "header",
              required: false,
              schema: { type: "string", maxLength: 255 },
            },
          ],
          requestBody: {
            required: true,
            content: { "application/json": { schema: z.toJSONSchema(JobSpecSchema, { io: "input" }) } },
          },
          responses: {
            "202": json(
              AcceptedSchema,
              "Started (or, for a repeated Idempotency-Key and body, the job already started)",
            ),
            ...errors,
            "409": json(ErrorSchema, "The Idempotency-Key was used with another body"),
            "413": json(
              ErrorSchema,
              "Body over 256 KiB (a job spec over 16 KiB is a 400: it travels in every state of its execution)",
            ),
            "415": json(ErrorSchema, "Not application/json"),
          },
        },
        get: {
          summary: "List jobs",
          parameters: [
            { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 1000 } },
            { name: "next", in: "query", schema: { type: "string" } },
            {
              name: "status",
              in: "query",
              schema: { enum: [...EXECUTION_STATUSES] },
            },
          ],
          responses: {
            "200": {
              description:
                "A page of jobs, one row per job (`currentExecutionArn`: the execution it goes on in); `next` continues it. A page may hold fewer rows than `limit`.",
            },
            "400": errors["400"],
            ...serviceErrors,
          },
        },
      },
      "/v1/jobs/{id}": {
        get: {
          summary: "A job: status, attempt, hosts",
          parameters: [jobId],
          responses: { "200": json(JobViewSchema, "The job"), "404": errors["404"] },
        },
        delete: {
          summary: "Cancel a job: teardown runs, status CANCELLED",
          parameters: [jobId, { name: "reason", in: "query", schema: { type: "string" } }],
          responses: {
            "202": { description: "Cancelling" },
            "404": errors["404"],
            "409": json(ErrorSchema, "Already ended"),
          },
        },
      },
      "/v1/jobs/{id}/status": {
        get: {
          summary: "The final JobStatus",
          parameters: [jobId],
          responses: {
            "200": json(JobStatusSchema, "The job ended"),
            "202": { description: "Still running" },
            "404": errors["404"],
          },
        },
      },
      "/v1/jobs/{id}/history": {
        get: {
          summary: "Execution history events (continuations included)",
          parameters: [jobId],
          responses: {
            "200": { description: "Events; `truncated` when the job has more executions than are read" },
            "404": errors["404"],
          },
        },
      },
      "/v1/jobs/{id}/logs": {
        get: {
          summary: "stdout/stderr tails of the current attempt's hosts",
          parameters: [
            jobId,
            { name: "slice", in: "query", schema: { type: "string" } },
            { name: "host", in: "query", schema: { type: "string" } },
          ],
          responses: { "200": { description: "Tails, host by host" }, "404": errors["404"] },
        },
      },
      "/push/launch-requests": {
        post: {
          summary: "Pub/Sub push: a job spec per message (OIDC bearer token required)",
          responses: { "200": { description: "Handled or rejected (acknowledged)" }, "401": errors["401"] },
        },
      },
      "/push/host-events": {
        post: {
          summary: "Pub/Sub push: host events (OIDC bearer token required)",
          responses: { "200": { description: "Handled" }, "401": errors["401"] },
        },
      },
      "/push/preemption-notices": {
        post: {
          summary: "Pub/Sub push: preemption notices (OIDC bearer token required)",
          responses: { "200": { description: "Handled" }, "401": errors["401"] },
        },
      },
    },
  };
}
