import { type Message, PubSub } from "@google-cloud/pubsub";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, type Harness, PROJECT, startHarness, waitFor } from "./helpers.js";

describe("pubsub emulator: delivery through the official client", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it("delivers 10,000 published messages at least once over StreamingPull", async () => {
    const [topic] = await h.pubsub.createTopic("bulk-topic");
    const [sub] = await topic.createSubscription("bulk-sub");
    const seen = new Set<string>();
    const received = collect(sub);
    sub.on("message", (m: Message) => seen.add(m.data.toString()));
    const ids: string[] = [];
    const payload = Buffer.alloc(64, "x");
    for (let batch = 0; batch < 10; batch++) {
      const sends = [];
      for (let i = 0; i < 1000; i++) {
        const n = batch * 1000 + i;
        sends.push(topic.publishMessage({ data: Buffer.concat([Buffer.from(`${n}:`), payload]) }));
      }
      ids.push(...(await Promise.all(sends)));
    }
    expect(new Set(ids).size).toBe(10_000);
    await waitFor(() => seen.size === 10_000, 50_000, "10,000 distinct messages");
    for (let n = 0; n < 10_000; n += 997) expect(seen.has(`${n}:${payload.toString()}`)).toBe(true);
    expect(received.errors).toEqual([]);
    await sub.close();
  });

  it("is reached through PUBSUB_EMULATOR_HOST with no other client configuration", async () => {
    const saved = process.env.PUBSUB_EMULATOR_HOST;
    process.env.PUBSUB_EMULATOR_HOST = h.emulator.host;
    const plain = new PubSub({ projectId: PROJECT });
    try {
      const [topic] = await plain.createTopic("env-topic");
      const [sub] = await topic.createSubscription("env-sub");
      const id = await topic.publishMessage({ data: Buffer.from("via env") });
      const [res] = await h.subscriberClient.pull({ subscription: sub.name, maxMessages: 1 });
      expect(res.receivedMessages?.[0]?.message?.messageId).toBe(id);
    } finally {
      await plain.close();
      if (saved === undefined) delete process.env.PUBSUB_EMULATOR_HOST;
      else process.env.PUBSUB_EMULATOR_HOST = saved;
    }
  });

  it("carries attributes, message ids, publish time and ordering keys", async () => {
    const [topic] = await h.pubsub.createTopic("attrs-topic");
    const [sub] = await topic.createSubscription("attrs-sub");
    const before = Date.now();
    const id = await topic.publishMessage({
      data: Buffer.from("hello"),
      attributes: { kind: "preemption", zone: "z" },
    });
    const got = collect(sub);
    await waitFor(() => got.messages.length >= 1);
    const m = got.messages[0] as Message;
    expect(m.id).toBe(id);
    expect(m.data.toString()).toBe("hello");
    expect(m.attributes).toEqual({ kind: "preemption", zone: "z" });
    expect(m.publishTime.getTime()).toBeGreaterThanOrEqual(before - 1000);
    await sub.close();
  });

  it("redelivers a nacked message", async () => {
    const [topic] = await h.pubsub.createTopic("nack-topic");
    const [sub] = await topic.createSubscription("nack-sub");
    let nacked = 0;
    const got = collect(sub, () => (nacked++ < 2 ? "nack" : "ack"));
    const id = await topic.publishMessage({ data: Buffer.from("again") });
    await waitFor(() => got.messages.length >= 3, 20_000, "two redeliveries");
    expect(got.messages.slice(0, 3).map((m) => m.id)).toEqual([id, id, id]);
    await sub.close();
  });

  it("extends the lease of a message the client still holds (lease management)", async () => {
    const [topic] = await h.pubsub.createTopic("lease-topic");
    const [sub] = await topic.createSubscription("lease-sub");
    const held = collect(sub, () => "keep");
    await topic.publishMessage({ data: Buffer.from("long job") });
    await waitFor(() => held.messages.length === 1, 20_000, "the delivery");
    const queue = h.emulator.broker.queue(sub.name);
    const lease = [...queue.leases.values()][0];
    const first = lease?.deadline ?? 0;
    // The client's lease manager sends ModifyAckDeadline while it holds the message: the lease's
    // deadline moves out by more than the initial modack on receipt would.
    await waitFor(() => (lease?.deadline ?? 0) > first + 1_000, 30_000, "a lease extension");
    expect(queue.leases.get(lease?.ackId ?? "")).toBe(lease);
    expect(held.messages).toHaveLength(1);
    held.messages[0]?.ack();
    await waitFor(() => queue.size === 0, 20_000, "the ack");
    await sub.close();
  });

  it("redelivers when the ack deadline expires", async () => {
    const [topic] = await h.pubsub.createTopic("expiry-topic");
    const [sub] = await topic.createSubscription("expiry-sub");
    const id = await topic.publishMessage({ data: Buffer.from("slow") });
    const client = h.subscriberClient;
    const [first] = await client.pull({ subscription: sub.name, maxMessages: 10 });
    const lease = first.receivedMessages?.[0];
    expect(lease?.message?.messageId).toBe(id);
    // Shorten the lease to one second and never ack: it must come back with a new ack id.
    await client.modifyAckDeadline({
      subscription: sub.name,
      ackIds: [lease?.ackId ?? ""],
      ackDeadlineSeconds: 1,
    });
    const [empty] = await client.pull({ subscription: sub.name, maxMessages: 10, returnImmediately: true });
    expect(empty.receivedMessages ?? []).toEqual([]);
    const [second] = await client.pull({ subscription: sub.name, maxMessages: 10 });
    const again = second.receivedMessages?.[0];
    expect(again?.message?.messageId).toBe(id);
    expect(again?.ackId).not.toBe(lease?.ackId);
    await client.acknowledge({ subscription: sub.name, ackIds: [again?.ackId ?? ""] });
    const [after] = await client.pull({ subscription: sub.name, maxMessages: 10, returnImmediately: true });
    expect(after.receivedMessages ?? []).toEqual([]);
  });

  it("delivers in order per ordering key, redelivering the rest of a key in order after a nack", async () => {
    const [topic] = await h.pubsub.createTopic("ordered-topic");
    topic.setPublishOptions({ messageOrdering: true });
    const [sub] = await topic.createSubscription("ordered-sub", { enableMessageOrdering: true });
    const keys = ["slice-a", "slice-b", "slice-c"];
    const perKey = 30;
    let nackedOnce = false;
    const got = collect(sub, (m) => {
      if (!nackedOnce && m.orderingKey === "slice-b" && m.data.toString() === "slice-b:10") {
        nackedOnce = true;
        return "nack";
      }
      return "ack";
    });
    const sends = [];
    for (let i = 0; i < perKey; i++) {
      for (const key of keys)
        sends.push(topic.publishMessage({ data: Buffer.from(`${key}:${i}`), orderingKey: key }));
    }
    await Promise.all(sends);
    const acked = () => {
      const byKey = new Map<string, number[]>();
      for (const m of got.messages) {
        const [key, n] = m.data.toString().split(":");
        const list = byKey.get(key ?? "") ?? [];
        list.push(Number(n));
        byKey.set(key ?? "", list);
      }
      return byKey;
    };
    const redelivered = () => {
      const b = acked().get("slice-b") ?? [];
      return b.indexOf(10, b.indexOf(10) + 1) > 0;
    };
    await waitFor(
      () => keys.every((k) => new Set(acked().get(k)).size === perKey) && redelivered(),
      30_000,
      "every ordered message, and the nacked one again",
    );
    const byKey = acked();
    for (const key of ["slice-a", "slice-c"]) expect(byKey.get(key)).toEqual([...Array(perKey).keys()]);
    // slice-b: in order up to and past the nacked 10; then a second pass starting at 10 (the later
    // messages whose acks raced the nack come again too), in order, and nothing earlier than 10.
    const b = byKey.get("slice-b") ?? [];
    const restart = b.indexOf(10, b.indexOf(10) + 1);
    const firstPass = b.slice(0, restart);
    expect(firstPass).toEqual([...Array(firstPass.length).keys()]);
    const secondPass = b.slice(restart);
    expect(secondPass[0]).toBe(10);
    expect(secondPass).toEqual([...secondPass].sort((x, y) => x - y));
    expect(nackedOnce).toBe(true);
    await sub.close();
  });

  it("dead-letters a message after max_delivery_attempts, counting attempts", async () => {
    const [topic] = await h.pubsub.createTopic("dl-source");
    const [dlt] = await h.pubsub.createTopic("dl-target");
    const [dlSub] = await dlt.createSubscription("dl-target-sub");
    const [sub] = await topic.createSubscription("dl-sub", {
      deadLetterPolicy: { deadLetterTopic: dlt.name, maxDeliveryAttempts: 5 },
    });
    const attempts: number[] = [];
    const got = collect(sub, (m) => {
      attempts.push(m.deliveryAttempt);
      return "nack";
    });
    const dead = collect(dlSub);
    const id = await topic.publishMessage({ data: Buffer.from("poison"), attributes: { job: "j1" } });
    await waitFor(() => dead.messages.length >= 1, 20_000, "the dead-lettered message");
    expect(got.messages.every((m) => m.id === id)).toBe(true);
    expect(attempts).toEqual([1, 2, 3, 4, 5]);
    const d = dead.messages[0] as Message;
    expect(d.data.toString()).toBe("poison");
    expect(d.attributes.job).toBe("j1");
    expect(d.attributes.CloudPubSubDeadLetterSourceDeliveryCount).toBe("5");
    expect(d.attributes.CloudPubSubDeadLetterSourceSubscription).toBe("dl-sub");
    expect(d.attributes.CloudPubSubDeadLetterSourceSubscriptionProject).toBe(PROJECT);
    await sub.close();
    await dlSub.close();
  });

  it("backs off redelivery by the retry policy", async () => {
    const [topic] = await h.pubsub.createTopic("retry-topic");
    const [sub] = await topic.createSubscription("retry-sub", {
      retryPolicy: { minimumBackoff: { seconds: 1 }, maximumBackoff: { seconds: 2 } },
    });
    const client = h.subscriberClient;
    await topic.publishMessage({ data: Buffer.from("later") });
    const [first] = await client.pull({ subscription: sub.name, maxMessages: 1 });
    const ackId = first.receivedMessages?.[0]?.ackId ?? "";
    await client.modifyAckDeadline({ subscription: sub.name, ackIds: [ackId], ackDeadlineSeconds: 0 });
    // Nacked, but held back by the one-second minimum backoff: an immediate pull finds nothing.
    const [held] = await client.pull({ subscription: sub.name, maxMessages: 1, returnImmediately: true });
    expect(held.receivedMessages ?? []).toEqual([]);
    const [later] = await client.pull({ subscription: sub.name, maxMessages: 1 });
    expect(later.receivedMessages?.[0]?.message?.data?.toString()).toBe("later");
  });

  it("answers NOT_FOUND to a stream on an unknown subscription", async () => {
    const sub = h.pubsub.subscription("no-such-sub");
    const errors: Array<{ code?: number }> = [];
    sub.on("error", (e: { code?: number }) => errors.push(e));
    sub.on("message", () => {});
    await waitFor(() => errors.length > 0, 20_000, "a stream error");
    expect(errors[0]?.code).toBe(status.NOT_FOUND);
    await sub.close();
  });
});
