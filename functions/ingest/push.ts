import { z } from "zod";
import { toValidationIssues } from "../../core/validation.js";

/** The JSON wrapper Pub/Sub POSTs to a push endpoint. */
export const PushEnvelopeSchema = z.object({
  message: z.object({
    data: z.string().optional(),
    attributes: z.record(z.string(), z.string()).optional(),
    messageId: z.string().optional(),
    message_id: z.string().optional(),
    publishTime: z.string().optional(),
  }),
  subscription: z.string().optional(),
  deliveryAttempt: z.int().optional(),
});
export type PushEnvelope = z.infer<typeof PushEnvelopeSchema>;

/** A push message's data, decoded from base64 and parsed as JSON; `undefined` when it is not. */
export function pushedJson(envelope: PushEnvelope): unknown {
  const data = envelope.message.data;
  if (data === undefined) return undefined;
  try {
    return JSON.parse(Buffer.from(data, "base64").toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
}

/** The `{code, message, issues}` answer of a push that is not one. */
export interface PushRefusal {
  status: 400 | 401;
  body: {
    code: string;
    message: string;
    issues: Array<{ path: string; message: string; expected?: string; got?: string }>;
  };
}

/**
 * Check a push request: its bearer token (when `authorize` is given; it answers why a token is
 * refused), its JSON and its envelope. Answers the envelope, or the refusal to send back.
 */
export async function readPush(
  request: { json(): Promise<unknown>; header(name: string): string | undefined },
  authorize?: (authorization: string | undefined) => Promise<string | undefined>,
): Promise<{ envelope: PushEnvelope } | { refusal: PushRefusal }> {
  const problem = authorize ? await authorize(request.header("authorization")) : undefined;
  if (problem)
    return { refusal: { status: 401, body: { code: "Unauthorized", message: problem, issues: [] } } };
  let raw: unknown;
  try {
    raw = await request.json();
  } catch {
    const issues = [
      {
        path: "(root)",
        expected: "a Pub/Sub push envelope as JSON",
        got: "a body that does not parse as JSON",
        message: "(root): expected a Pub/Sub push envelope as JSON, got a body that does not parse as JSON",
      },
    ];
    return { refusal: { status: 400, body: { code: "InvalidPush", message: "body is not JSON", issues } } };
  }
  const envelope = PushEnvelopeSchema.safeParse(raw, { reportInput: true });
  if (!envelope.success) {
    const issues = toValidationIssues(envelope.error.issues);
    return {
      refusal: { status: 400, body: { code: "InvalidPush", message: "not a Pub/Sub push envelope", issues } },
    };
  }
  return { envelope: envelope.data };
}
