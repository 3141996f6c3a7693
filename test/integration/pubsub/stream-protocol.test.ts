import {
  type ClientDuplexStream,
  credentials,
  type GrpcObject,
  type ServiceClientConstructor,
} from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPubSubServices } from "../../../infra/local/pubsub/protos.js";
import { type Harness, startHarness, waitFor } from "./helpers.js";

type Duplex = ClientDuplexStream<object, { receivedMessages: Received[] }>;

interface Received {
  ackId: string;
  message: { messageId: string; data: Buffer };
}

// Clients in other languages ack and modack on the StreamingPull stream itself and rely on the
// server's flow control; the Node client does neither, so these go through a generated stub.
describe("pubsub emulator: StreamingPull protocol details", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it("honours max_outstanding_messages and takes acks and nacks on the stream", async () => {
    const [topic] = await h.pubsub.createTopic("proto-topic");
    const [sub] = await topic.createSubscription("proto-sub");
    const ids = await Promise.all(
      Array.from({ length: 10 }, (_, i) => topic.publishMessage({ data: Buffer.from(`p${i}`) })),
    );
    const v1 = ((loadPubSubServices().grpcObject.google as GrpcObject).pubsub as GrpcObject).v1 as GrpcObject;
    const Subscriber = v1.Subscriber as ServiceClientConstructor;
    const client = new Subscriber(h.emulator.host, credentials.createInsecure());
    const stream = (client.StreamingPull as () => Duplex)();
    const got: Received[] = [];
    stream.on("data", (res) => got.push(...res.receivedMessages));
    stream.on("error", () => {});
    stream.write({ subscription: sub.name, streamAckDeadlineSeconds: 60, maxOutstandingMessages: 3 });
    await waitFor(() => got.length === 3, 20_000, "the first three");
    const queue = h.emulator.broker.queue(sub.name);
    expect(queue.leases.size).toBe(3);
    // Ack one and nack one on the stream: two slots free up, the nacked message comes again.
    stream.write({
      ackIds: [got[0]?.ackId],
      modifyDeadlineAckIds: [got[1]?.ackId],
      modifyDeadlineSeconds: [0],
    });
    await waitFor(() => got.length === 5, 20_000, "two more");
    expect(queue.leases.size).toBe(3);
    // Keep acking whatever is held until every message was seen.
    const seen = new Set<string>();
    let acked = 0;
    while (seen.size < 10) {
      const held = got.slice(acked).filter((r) => r.ackId !== got[1]?.ackId);
      acked = got.length;
      stream.write({ ackIds: held.map((r) => r.ackId) });
      for (const r of got) seen.add(r.message.messageId);
      if (seen.size < 10) await waitFor(() => got.length > acked, 20_000, "more messages");
    }
    expect([...seen].sort()).toEqual([...ids].sort());
    stream.cancel();
    client.close();
  });

  it("ends a stream with INVALID_ARGUMENT for mismatched modack lists", async () => {
    const [topic] = await h.pubsub.createTopic("proto-bad-topic");
    const [sub] = await topic.createSubscription("proto-bad-sub");
    const v1 = ((loadPubSubServices().grpcObject.google as GrpcObject).pubsub as GrpcObject).v1 as GrpcObject;
    const client = new (v1.Subscriber as ServiceClientConstructor)(
      h.emulator.host,
      credentials.createInsecure(),
    );
    const stream = (client.StreamingPull as () => Duplex)();
    const code = new Promise<number>((resolve) =>
      stream.on("status", (s: { code: number }) => resolve(s.code)),
    );
    stream.on("data", () => {});
    stream.on("error", () => {});
    stream.write({ subscription: sub.name, streamAckDeadlineSeconds: 10 });
    stream.write({ modifyDeadlineAckIds: ["1-1", "2-1"], modifyDeadlineSeconds: [10] });
    expect(await code).toBe(3);
    client.close();
  });
});
