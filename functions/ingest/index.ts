import { Hono } from "hono";
import { z } from "zod";
import { HostEventSchema, type PreemptionNotice, PreemptionNoticeSchema } from "../../core/host-event.js";
import { serializeError } from "../../core/serialized-error.js";
import { toValidationIssues } from "../../core/validation.js";
import type { ControlPlaneDeps } from "../deps.js";
import { createIngest, type IngestResult } from "./events.js";
import { type PushEnvelope, pushedJson, readPush } from "./push.js";

/** Options of the ingest app: who may push. */
export interface IngestAppOptions {
  /** Checks the `authorization` header of a push; absent = every push is accepted. */
  authorizePush?: (authorization: string | undefined) => boolean | Promise<boolean>;
}

/** The fields read from a Cloud Logging LogEntry (an audit log entry routed here by a log sink). */
const AuditLogEntrySchema = z.object({
  protoPayload: z.object({ methodName: z.string().max(300), resourceName: z.string().max(1000) }),
  timestamp: z.string().max(100).optional(),
});
// `projects/P/zones/Z/instances/NAME`, NAME by Compute Engine's rule (at most 63 characters).
const INSTANCE_RESOURCE = /^projects\/[^/]+\/zones\/[^/]+\/instances\/([a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)$/;

/**
 * A Compute Engine `compute.instances.preempted` system-event LogEntry as a notice for the host
 * whose address is the instance's name (GCE's internal DNS resolves it inside the VPC).
 */
function noticeFromLogEntry(data: unknown): PreemptionNotice | string {
  const entry = AuditLogEntrySchema.safeParse(data, { reportInput: true });
  if (!entry.success) {
    return `malformed log entry: ${toValidationIssues(entry.error.issues)
      .map((i) => i.message)
      .join("; ")}`;
  }
  const { methodName, resourceName } = entry.data.protoPayload;
  if (methodName !== "compute.instances.preempted") return `log entry of ${methodName} is not a preemption`;
  const instance = INSTANCE_RESOURCE.exec(resourceName)?.[1];
  if (instance === undefined)
    return `log entry names ${resourceName.slice(0, 200)}, not a Compute Engine instance`;
  const at = entry.data.timestamp ? ` at ${entry.data.timestamp}` : "";
  const when = entry.data.timestamp ? Date.parse(entry.data.timestamp) : Number.NaN;
  const notice: PreemptionNotice = {
    address: instance,
    reason: `Compute Engine preempted ${resourceName}${at}`,
  };
  // The entry reaches the topic through a log sink, maybe long after: when it happened is what counts.
  if (Number.isFinite(when)) notice.at = when;
  return notice;
}

/**
 * Turn a pushed payload into a preemption notice: a notice as such, an agent's `preempted` event,
 * or a Cloud Logging entry of a Compute Engine preemption.
 */
export function noticeFrom(data: unknown): PreemptionNotice | string {
  const event = HostEventSchema.safeParse(data);
  if (event.success) {
    if (event.data.kind !== "preempted") return `host event of kind ${event.data.kind} is not a notice`;
    return {
      slice: event.data.sliceName,
      address: event.data.sliceName === undefined ? event.data.address : undefined,
      jobId: event.data.jobId,
      attempt: event.data.attempt,
      at: event.data.at,
      reason: event.data.reason,
    };
  }
  if (data !== null && typeof data === "object" && "protoPayload" in data) return noticeFromLogEntry(data);
  const notice = PreemptionNoticeSchema.safeParse(data, { reportInput: true });
  if (notice.success) return notice.data;
  return `malformed notice: ${toValidationIssues(notice.error.issues)
    .map((i) => i.message)
    .join("; ")}`;
}

/**
 * The Pub/Sub push endpoints: `POST /push/host-events` and `POST /push/preemption-notices`.
 * A well-formed push whose data is not a valid event is acknowledged (200, `ignored`) so that
 * Pub/Sub does not redeliver it forever; a transient failure answers 500 and is redelivered.
 */
export function createIngestApp(
  deps: Pick<ControlPlaneDeps, "store" | "tokens" | "clock" | "log">,
  options: IngestAppOptions = {},
): Hono {
  const ingest = createIngest(deps);
  const app = new Hono();
  const authorize = options.authorizePush
    ? async (authorization: string | undefined) =>
        (await options.authorizePush?.(authorization)) ? undefined : "push not authorized"
    : undefined;
  const route = (path: string, consume: (data: unknown, envelope: PushEnvelope) => Promise<IngestResult>) =>
    app.post(path, async (c) => {
      const push = await readPush(c.req, authorize);
      if ("refusal" in push) return c.json(push.refusal.body, push.refusal.status);
      try {
        const result = await consume(pushedJson(push.envelope), push.envelope);
        deps.log?.(`ingest ${push.envelope.message.messageId ?? "?"}: ${JSON.stringify(result)}`);
        return c.json(result, 200);
      } catch (e) {
        const error = serializeError(e);
        deps.log?.(`ingest failed: ${error.name}: ${error.message}`);
        return c.json({ code: error.name, message: error.message, issues: [] }, 500);
      }
    });
  route("/push/host-events", async (data) => {
    const event = HostEventSchema.safeParse(data, { reportInput: true });
    if (!event.success) {
      return {
        action: "ignored",
        reason: `malformed host event: ${toValidationIssues(event.error.issues)
          .map((i) => i.message)
          .join("; ")}`,
      };
    }
    return ingest.hostEvent(event.data);
  });
  route("/push/preemption-notices", async (data, envelope) => {
    const notice = noticeFrom(data);
    if (typeof notice === "string") return { action: "ignored", reason: notice };
    // A notice that says nothing of its time is as old as its publication (kept on redelivery).
    const published = Date.parse(envelope.message.publishTime ?? "");
    if (notice.at === undefined && Number.isFinite(published)) notice.at = published;
    return ingest.notice(notice);
  });
  app.get("/health", (c) => c.json({ ok: true, function: "ingest" }));
  return app;
}
