import { z } from "zod";

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
