import { createHash, randomBytes } from "node:crypto";

// Naming only: no server framework, so that the TypeScript client can share it with the API.

/** Step Functions' limit on an execution name, and so on a job id. */
const MAX_EXECUTION_NAME = 80;

/**
 * The job id (its first execution's name) of a job named `name`: with an idempotency key, a hash
 * of the key — the same key, the same id, whoever starts it (the API, a launch request, the SFN
 * client); without one (or an empty one), a random suffix. At most 80 characters.
 */
export function jobIdFor(name: string, idempotencyKey?: string): string {
  const suffix = idempotencyKey
    ? createHash("sha256").update(idempotencyKey).digest("hex").slice(0, 12)
    : randomBytes(4).toString("hex");
  return `${name.slice(0, MAX_EXECUTION_NAME - suffix.length - 1)}-${suffix}`;
}

/** The execution ARN of job `jobId` (its first execution) under `stateMachineArn`. */
export function executionArnOf(stateMachineArn: string, jobId: string): string {
  return `${stateMachineArn.replace(":stateMachine:", ":execution:")}:${jobId}`;
}
