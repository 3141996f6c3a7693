import { type Message, PubSub, type Subscription, v1 } from "@google-cloud/pubsub";
import { credentials } from "@grpc/grpc-js";
import { type PubSubEmulator, startPubSubEmulator } from "../../../infra/local/pubsub/emulator.js";

// The client otherwise probes the GCE metadata server for a project id and logs warnings.
process.env.METADATA_SERVER_DETECTION = "none";

export const PROJECT = "gangway-test";

/** An emulator on 127.0.0.1:0 plus official clients pointed at it; `close` stops all of them. */
export interface Harness {
  emulator: PubSubEmulator;
  pubsub: PubSub;
  /** The generated low-level client, for Pull/ModifyAckDeadline with exact control. */
  subscriberClient: v1.SubscriberClient;
  close(): Promise<void>;
}

export async function startHarness(
  options: Parameters<typeof startPubSubEmulator>[0] = {},
): Promise<Harness> {
  const emulator = await startPubSubEmulator({ port: 0, ...options });
  const pubsub = clientFor(emulator.host);
  const subscriberClient = new v1.SubscriberClient({
    servicePath: "127.0.0.1",
    port: emulator.port,
    sslCreds: credentials.createInsecure(),
  });
  return {
    emulator,
    pubsub,
    subscriberClient,
    async close() {
      await subscriberClient.close();
      await pubsub.close();
      await emulator.close();
    },
  };
}

/** The official client as an application configures it for an emulator. */
export function clientFor(host: string): PubSub {
  return new PubSub({ projectId: PROJECT, apiEndpoint: host, emulatorMode: true });
}

/** Resolve when `predicate` holds, polling events by a short interval; reject after `ms`. */
export async function waitFor(predicate: () => boolean, ms = 20_000, what = "condition"): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Collect messages from a streaming subscription; `handle` decides ack or nack. */
export function collect(
  sub: Subscription,
  handle: (m: Message) => "ack" | "nack" | "keep" = () => "ack",
): { messages: Message[]; errors: Error[] } {
  const out = { messages: [] as Message[], errors: [] as Error[] };
  sub.on("message", (m: Message) => {
    out.messages.push(m);
    const action = handle(m);
    if (action === "ack") m.ack();
    else if (action === "nack") m.nack();
  });
  sub.on("error", (e: Error) => out.errors.push(e));
  return out;
}

/** gRPC status code of a rejected client call. */
export async function codeOf(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as { code?: number }).code;
  }
}
