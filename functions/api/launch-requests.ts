import { Hono } from "hono";
import { safeParseJobSpec } from "../../core/job-spec.js";
import { pushedJson, readPush } from "../ingest/push.js";
import type { ExecutionsApi, ResultsStore } from "../ports.js";
import { type ApiIssue, inputTooLarge, jsonOnError, refusesRequest, startRefusal } from "./errors.js";
import { executionArnOf, jobIdFor } from "./job-id.js";

/** What the launch-request endpoint needs. */
export interface LaunchRequestsDeps {
  executions: ExecutionsApi;
  store: ResultsStore;
  stateMachineArn: string;
  authorizePush?: ((authorization: string | undefined) => Promise<string | undefined>) | undefined;
  log?: ((line: string) => void) | undefined;
}

/**
 * `POST /push/launch-requests`: a Pub/Sub push whose data is a job spec starts exactly one
 * execution, however often Pub/Sub redelivers it: the execution's name comes from the message's
 * `idempotencyKey` attribute (else its message id), and starting a name twice starts nothing new.
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
    const data = pushedJson(envelope);
    if (data === undefined)
      return reject("InvalidJson", [{ path: "(root)", message: "(root): message data is not JSON" }]);
    const spec = safeParseJobSpec(data);
    if (!spec.success)
      return reject(
        "InvalidJobSpec",
        spec.issues.map(({ path, message: m }) => ({ path, message: m })),
      );
    // An empty key is none, as everywhere: the message id keeps redeliveries to one job.
    const key = message.attributes?.idempotencyKey || `message:${messageId}`;
    const jobId = jobIdFor(spec.data.name, key);
    const input = JSON.stringify(spec.data);
    const tooLarge = inputTooLarge(input);
    if (tooLarge) return reject(tooLarge.code, tooLarge.issues, tooLarge.message);
    try {
      const { executionArn } = await deps.executions.start({
        stateMachineArn: deps.stateMachineArn,
        name: jobId,
        input,
      });
      return c.json({ action: "started", jobId, executionArn }, 200);
    } catch (e) {
      if (refusesRequest(e)) {
        const refusal = startRefusal(e);
        return reject(refusal.code, refusal.issues, refusal.message);
      }
      if ((e as { name?: string }).name !== "ExecutionAlreadyExists") throw e;
      const executionArn = executionArnOf(deps.stateMachineArn, jobId);
      const existing = await deps.executions.describe(executionArn);
      if (existing?.input === input) return c.json({ action: "duplicate", jobId, executionArn }, 200);
      return reject("IdempotencyConflict", [
        {
          path: "attributes.idempotencyKey",
          message: "attributes.idempotencyKey: already used for another job spec",
        },
      ]);
    }
  });
  return app;
}
