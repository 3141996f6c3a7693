import { Hono } from "hono";
import { safeParseJobSpec } from "../../core/job-spec.js";
import { type PushEnvelope, readPush } from "../ingest/push.js";
import type { ExecutionsApi, ResultsStore } from "../ports.js";
import {
  type ApiIssue,
  answerUnknownRoutes,
  inputTooLarge,
  issue,
  jsonOnError,
  startRefusal,
} from "./errors.js";
import { startOnce } from "./idempotency.js";

/** What the launch-request endpoint needs. */
export interface LaunchRequestsDeps {
  executions: ExecutionsApi;
  store: ResultsStore;
  stateMachineArn: string;
  authorizePush?: ((authorization: string | undefined) => Promise<string | undefined>) | undefined;
  log?: ((line: string) => void) | undefined;
}

/** A push's data as JSON, or (as `problem`) what came instead. */
function pushedData(envelope: PushEnvelope): { value: unknown } | { problem: string } {
  const data = envelope.message.data;
  if (data === undefined) return { problem: "a message without data" };
  const text = Buffer.from(data, "base64").toString("utf8");
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (e) {
    return { problem: `data that does not parse: ${(e as Error).message}` };
  }
}

/**
 * `POST /push/launch-requests`: a Pub/Sub push whose data is a job spec starts exactly one
 * execution, however often Pub/Sub redelivers it: the execution's name comes from the message's
 * `idempotencyKey` attribute (else its message id), and starting a name twice starts nothing new.
 * An `idempotencyKey` is claimed in the results store before the start, as the API's
 * `Idempotency-Key` is (the same record: the same key, the same job, whichever way it comes), so
 * messages racing with one key and different specs start one job and the others are rejected.
 * A malformed request — and one Step Functions refuses, such as a spec whose execution input is
 * over 256 KiB — is acknowledged (never retried forever) and recorded under `launch-rejections/`
 * in the results store with every problem found.
 */
export function createLaunchRequestsApp(deps: LaunchRequestsDeps): Hono {
  const app = new Hono();
  app.onError(jsonOnError(deps.log));
  app.post("/push/launch-requests", async (c) => {
    const push = await readPush(c.req, deps.authorizePush);
    if ("refusal" in push) return c.json(push.refusal.body, push.refusal.status);
    const envelope = push.envelope;
    const message = envelope.message;
    const messageId = message.messageId ?? message.message_id ?? "unknown";
    const reject = async (code: string, issues: ApiIssue[], why?: string) => {
      const summary = why ?? issues.map((i) => i.message).join("; ");
      const record = { code, message: summary, messageId, issues, at: new Date().toISOString() };
      await deps.store.put(`launch-rejections/${encodeURIComponent(messageId)}.json`, JSON.stringify(record));
      deps.log?.(`launch request ${messageId} rejected: ${summary}`);
      // 200: acknowledged, so Pub/Sub does not redeliver what can never succeed.
      return c.json({ action: "rejected", ...record }, 200);
    };
    const data = pushedData(envelope);
    if ("problem" in data) return reject("InvalidJson", [issue("(root)", "a JSON document", data.problem)]);
    const spec = safeParseJobSpec(data.value);
    if (!spec.success)
      return reject(
        "InvalidJobSpec",
        spec.issues.map(({ path, expected, got, message: m }) => ({ path, expected, got, message: m })),
      );
    const input = JSON.stringify(spec.data);
    const tooLarge = inputTooLarge(input);
    if (tooLarge) return reject(tooLarge.code, tooLarge.issues, tooLarge.message);
    // An empty key is none, as everywhere: the message id keeps redeliveries to one job (a
    // message is only ever redelivered with its own data, so its id takes no claim).
    const given = message.attributes?.idempotencyKey || undefined;
    const outcome = await startOnce(deps, {
      name: spec.data.name,
      input,
      key: given ?? `message:${messageId}`,
      claim: given !== undefined,
    });
    switch (outcome.kind) {
      case "started":
      case "existing": {
        const action = outcome.kind === "started" ? "started" : "duplicate";
        return c.json({ action, jobId: outcome.jobId, executionArn: outcome.executionArn }, 200);
      }
      case "refused": {
        const refusal = startRefusal(outcome.error);
        return reject(refusal.code, refusal.issues, refusal.message);
      }
      case "conflict":
        return reject("IdempotencyConflict", [
          issue(
            "attributes.idempotencyKey",
            `a key not used for another job spec (it names job ${outcome.jobId})`,
            `string ${JSON.stringify(given ?? `message:${messageId}`)}, already used for another job spec`,
          ),
        ]);
    }
  });
  return answerUnknownRoutes(app);
}
