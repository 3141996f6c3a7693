import { createHash } from "node:crypto";
import { z } from "zod";
import type { ExecutionsApi, ResultsStore } from "../ports.js";
import { refusesRequest } from "./errors.js";
import { executionArnOf, jobIdFor } from "./job-id.js";

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/**
 * What an idempotency key is held for: the body (its hash) and the job it names. `started: false`
 * is a claim taken before StartExecution whose start is not known to have happened; a record
 * without `started` (written after the start, as before claims were taken first) is a started one.
 */
const IdempotencyRecordSchema = z.object({
  bodyHash: z.string(),
  jobId: z.string(),
  executionArn: z.string(),
  started: z.boolean().optional(),
});
export type IdempotencyRecord = z.infer<typeof IdempotencyRecordSchema>;

/** Where the record of idempotency key `key` is kept in the results store. */
export const idempotencyRecordKey = (key: string) => `idempotency/${sha256(key)}.json`;

/** The idempotency record at `recordKey`, or undefined when there is none or it is unreadable (torn by a crash). */
export async function readIdempotencyRecord(
  store: ResultsStore,
  recordKey: string,
): Promise<IdempotencyRecord | undefined> {
  const text = await store.get(recordKey);
  if (!text) return undefined;
  try {
    const parsed = IdempotencyRecordSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** What {@link startOnce} did. */
export type StartOnceOutcome =
  /** This request started the job (or Step Functions answered its start as the same one). */
  | { kind: "started"; jobId: string; executionArn: string }
  /** The key's job, started before with the same body. */
  | { kind: "existing"; jobId: string; executionArn: string }
  /** The key is held for another body (`jobId`: the job it names). */
  | { kind: "conflict"; jobId: string }
  /** Step Functions refused the start for what the request carries: retrying never helps. */
  | { kind: "refused"; error: Error };

export interface StartOnceDeps {
  executions: ExecutionsApi;
  store: ResultsStore;
  stateMachineArn: string;
  log?: ((line: string) => void) | undefined;
}

/**
 * Start job `name` with execution input `input` at most once per idempotency key. Without a key
 * (or with an empty one) it starts under a fresh id; with `claim: false`, under the key's id,
 * with nothing recorded. Otherwise the key is claimed first —
 * `store.create` of its record (body hash + job id), first writer wins — and only then started,
 * so two requests racing with one key start one job whatever their bodies, and a key is held
 * for one body even when the start or the record's update fails:
 * - a request with the claim's body starts (again) under the claim's job id: Step Functions
 *   answers a start of a running execution's name with the same input as that execution, and
 *   refuses it (`ExecutionAlreadyExists`) once it ended, which is answered as `existing` when
 *   the ended execution's input is this one. A claim whose start failed blocks nothing: the
 *   retry of the same request starts the job;
 * - a request with another body is a `conflict`;
 * - a claim whose start was refused (the body can never start) or whose id turned out to name
 *   another body's execution is dropped, so the key can be used again.
 * Once the start is known, the record is marked started, and later requests with the same body
 * are answered from it without asking Step Functions. A record torn by a crash counts as none.
 * Errors other than refusals (throttling, a store fault) are thrown; the claim stays.
 */
export async function startOnce(
  deps: StartOnceDeps,
  request: {
    name: string;
    input: string;
    key?: string | undefined;
    /** `false`: the key names the job but takes no claim (a key only ever sent with one body, such as a message id). */
    claim?: boolean | undefined;
  },
): Promise<StartOnceOutcome> {
  const key = request.key || undefined;
  const jobId = jobIdFor(request.name, key);
  if (key === undefined || request.claim === false) {
    const outcome = await start(deps, jobId, request.input);
    return outcome.kind === "superseded" ? { kind: "conflict", jobId } : outcome;
  }
  const recordKey = idempotencyRecordKey(key);
  const claim: IdempotencyRecord = {
    bodyHash: sha256(request.input),
    jobId,
    executionArn: executionArnOf(deps.stateMachineArn, jobId),
    started: false,
  };
  const held = await claimKey(deps.store, recordKey, claim);
  if (held.bodyHash !== claim.bodyHash) return { kind: "conflict", jobId: held.jobId };
  if (held.started !== false) return { kind: "existing", jobId: held.jobId, executionArn: held.executionArn };
  const outcome = await start(deps, held.jobId, request.input);
  if (outcome.kind === "refused" || outcome.kind === "superseded") {
    await dropClaim(deps.store, recordKey, claim.bodyHash);
    return outcome.kind === "refused" ? outcome : { kind: "conflict", jobId: held.jobId };
  }
  try {
    await deps.store.put(
      recordKey,
      JSON.stringify({ ...held, executionArn: outcome.executionArn, started: true }),
    );
  } catch (e) {
    // The job is started: the claim left as is only makes a repeat start it again, which is harmless.
    (deps.log ?? ((line) => console.error(line)))(
      `idempotency record ${recordKey} of job ${held.jobId} not marked started: ${(e as Error).message}`,
    );
  }
  return outcome;
}

/** Claim `recordKey` with `claim`: answers the record that holds the key, `claim` itself when it won. */
async function claimKey(
  store: ResultsStore,
  recordKey: string,
  claim: IdempotencyRecord,
): Promise<IdempotencyRecord> {
  const text = JSON.stringify(claim);
  if (await store.create(recordKey, text)) return claim;
  const held = await readIdempotencyRecord(store, recordKey);
  if (held) return held;
  // Unreadable (torn by a crash) or dropped since: this request takes the key.
  await store.put(recordKey, text);
  return claim;
}

/** Drop a claim that never started a job, if it is still the claim of body `bodyHash`. */
async function dropClaim(store: ResultsStore, recordKey: string, bodyHash: string): Promise<void> {
  const held = await readIdempotencyRecord(store, recordKey);
  if (held?.bodyHash === bodyHash && held.started === false) await store.delete(recordKey);
}

/** StartExecution of `jobId`, with `ExecutionAlreadyExists` sorted into the same job and another body's. */
async function start(
  deps: StartOnceDeps,
  jobId: string,
  input: string,
): Promise<
  | { kind: "started" | "existing"; jobId: string; executionArn: string }
  | { kind: "refused"; error: Error }
  | { kind: "superseded" }
> {
  try {
    const { executionArn } = await deps.executions.start({
      stateMachineArn: deps.stateMachineArn,
      name: jobId,
      input,
    });
    return { kind: "started", jobId, executionArn };
  } catch (e) {
    if (refusesRequest(e)) return { kind: "refused", error: e };
    if ((e as { name?: string }).name !== "ExecutionAlreadyExists") throw e;
    // Started before (and ended, or started with another input): the same job only with this input.
    const executionArn = executionArnOf(deps.stateMachineArn, jobId);
    const existing = await deps.executions.describe(executionArn);
    return existing?.input === input ? { kind: "existing", jobId, executionArn } : { kind: "superseded" };
  }
}
