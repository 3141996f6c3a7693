import { type SerializedError, shortenError } from "../core/serialized-error.js";
import type { AttemptStore, Outcome } from "./attempts.js";
import type { TaskTokens, TokenOutcome } from "./ports.js";

/** The output an attempt's task receives when every host finished well. */
export interface AttemptCompletion {
  outcome: "succeeded";
  at: number;
}

/**
 * Send an attempt's outcome to its task token once both are recorded. Called by whoever
 * records the second of the two (ingest after deciding, await after registering the token),
 * so an outcome decided before the token existed is never lost. Sending twice is harmless.
 * Once sent (or found moot: the task is gone), the attempt is marked delivered; a send that
 * failed leaves it unmarked for {@link redeliverOutcome}.
 */
export async function deliverOutcome(
  attempts: AttemptStore,
  tokens: TaskTokens,
  jobId: string,
  attempt: number,
  known?: { outcome?: Outcome | undefined; token?: string | undefined },
): Promise<TokenOutcome | "waiting"> {
  const outcome = known?.outcome ?? (await attempts.outcome(jobId, attempt));
  const token = known?.token ?? (await attempts.token(jobId, attempt));
  if (!outcome || !token) return "waiting";
  const sent =
    outcome.kind === "succeeded"
      ? await tokens.succeed(token, { outcome: "succeeded", at: outcome.at } satisfies AttemptCompletion)
      : await tokens.fail(token, outcome.error.name, errorCause(outcome.error));
  await attempts.markDelivered(jobId, attempt);
  return sent;
}

/**
 * Send a decided outcome again if it never reached the token: the send after the decision
 * failed (Step Functions unreachable, the function cut short), and the event that decided it
 * comes back as a duplicate. Nothing is sent when no outcome is decided or it was delivered.
 */
export async function redeliverOutcome(
  attempts: AttemptStore,
  tokens: TaskTokens,
  jobId: string,
  attempt: number,
  outcome?: Outcome,
): Promise<TokenOutcome | "waiting" | "delivered"> {
  if (await attempts.delivered(jobId, attempt)) return "delivered";
  return deliverOutcome(attempts, tokens, jobId, attempt, { outcome });
}

/**
 * An error as a task failure's cause: shortened, for Step Functions' 32,768 characters and for the
 * state the Catch puts it in (its `problem`), which the 256 KiB limit bounds.
 */
export function errorCause(error: SerializedError): string {
  return JSON.stringify(shortenError(error));
}
