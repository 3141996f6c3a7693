/** The API's request shapes (zod), checked on every call; a bad field answers `ValidationException`. */
import { z } from "zod";
import { toValidationIssues } from "../../../core/validation.js";
import { SfnApiError } from "./errors.js";

const arn = z.string().min(1).max(256);
const token = z.string().min(1).max(1024);
const pageSize = z.number().int().min(0).max(1000).optional();

/** One schema per operation. */
export const REQUESTS = {
  CreateStateMachine: z.object({
    name: z.string(),
    definition: z.string(),
    roleArn: arn,
    type: z.enum(["STANDARD", "EXPRESS"]).optional(),
  }),
  UpdateStateMachine: z.object({
    stateMachineArn: arn,
    definition: z.string().optional(),
    roleArn: arn.optional(),
  }),
  DescribeStateMachine: z.object({ stateMachineArn: arn }),
  DeleteStateMachine: z.object({ stateMachineArn: arn }),
  ListStateMachines: z.object({ maxResults: pageSize, nextToken: token.optional() }),
  StartExecution: z.object({
    stateMachineArn: arn,
    name: z.string().optional(),
    input: z.string().optional(),
  }),
  DescribeExecution: z.object({ executionArn: arn }),
  DescribeStateMachineForExecution: z.object({ executionArn: arn }),
  ListExecutions: z.object({
    stateMachineArn: arn,
    statusFilter: z
      .enum(["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"])
      .optional(),
    maxResults: pageSize,
    nextToken: token.optional(),
  }),
  StopExecution: z.object({
    executionArn: arn,
    error: z.string().max(256).optional(),
    cause: z.string().max(32768).optional(),
  }),
  GetExecutionHistory: z.object({
    executionArn: arn,
    maxResults: pageSize,
    reverseOrder: z.boolean().optional(),
    nextToken: token.optional(),
    includeExecutionData: z.boolean().optional(),
  }),
  SendTaskSuccess: z.object({ taskToken: z.string().min(1).max(2048), output: z.string() }),
  SendTaskFailure: z.object({
    taskToken: z.string().min(1).max(2048),
    error: z.string().max(256).optional(),
    cause: z.string().max(32768).optional(),
  }),
  SendTaskHeartbeat: z.object({ taskToken: z.string().min(1).max(2048) }),
} as const;

/** The operations the engine serves. */
export type Operation = keyof typeof REQUESTS;

/** Parse `body` for `op`; throws an AWS-shaped `ValidationException` naming each bad field. */
export function parseRequest<O extends Operation>(op: O, body: unknown): z.infer<(typeof REQUESTS)[O]> {
  const schema = REQUESTS[op];
  const r = schema.safeParse(body, { reportInput: true });
  if (r.success) return r.data as z.infer<(typeof REQUESTS)[O]>;
  const issues = toValidationIssues(r.error.issues);
  const missing = r.error.issues.find(
    (i) => i.code === "invalid_type" && (i as { input?: unknown }).input === undefined,
  );
  const message = `${issues.length} validation error${issues.length === 1 ? "" : "s"} detected: ${issues
    .map((i) => i.message)
    .join("; ")}`;
  throw new SfnApiError(missing ? "MissingRequiredParameter" : "ValidationException", message);
}
