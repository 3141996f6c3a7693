import { v1 } from "@google-cloud/pubsub";
import { Client, credentials, Metadata, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { codeOf, type Harness, PROJECT, startHarness, waitFor } from "./helpers.js";

describe("pubsub emulator: resources and hostile input", () => {
  let h: Harness;
  let publisher: v1.PublisherClient;
  beforeAll(async () => {
    h = await startHarness();
    publisher = new v1.PublisherClient({
      servicePath: "127.0.0.1",
      port: h.emulator.port,
      sslCreds: credentials.createInsecure(),
    });
  });
  afterAll(async () => {
    await publisher?.close();
    await h?.close();
  });

  it("creates, gets, updates, lists (paginated) and deletes topics", async () => {
    const names = ["page-a", "page-b", "page-c", "page-d", "page-e", "page-f", "page-g"];
    for (const n of names) await h.pubsub.createTopic(n);
    const [topic] = await h.pubsub.topic("page-a").get();
    expect(topic.name).toBe(`projects/${PROJECT}/topics/page-a`);
    const [meta] = await topic.setMetadata({ labels: { team: "infra" } });
    expect(meta.labels).toEqual({ team: "infra" });
    const [again] = await topic.getMetadata();
    expect(again.labels).toEqual({ team: "infra" });

    const seen: string[] = [];
    let pageToken: string | undefined;
    let pages = 0;
    do {
      const [topics, , response] = await publisher.listTopics(
        { project: `projects/${PROJECT}`, pageSize: 3, pageToken: pageToken ?? "" },
        { autoPaginate: false },
      );
      seen.push(...topics.map((t) => t.name ?? ""));
      pageToken = response?.nextPageToken || undefined;
      pages++;
    } while (pageToken);
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(seen.filter((n) => n.includes("/page-")).map((n) => n.split("/").pop())).toEqual(names);

    await h.pubsub.topic("page-g").delete();
    const [exists] = await h.pubsub.topic("page-g").exists();
    expect(exists).toBe(false);
    expect(await codeOf(h.pubsub.topic("page-g").delete())).toBe(status.NOT_FOUND);
  });

  it("creates, gets, updates, lists and deletes subscriptions", async () => {
    const [topic] = await h.pubsub.createTopic("crud-topic");
    const [sub] = await topic.createSubscription("crud-sub", { ackDeadlineSeconds: 30, labels: { a: "b" } });
    const [meta] = await sub.getMetadata();
    expect(meta.ackDeadlineSeconds).toBe(30);
    expect(meta.topic).toBe(topic.name);
    const [updated] = await sub.setMetadata({ ackDeadlineSeconds: 60 });
    expect(updated.ackDeadlineSeconds).toBe(60);
    expect(updated.labels).toEqual({ a: "b" });
    const [subs] = await topic.getSubscriptions();
    expect(subs.map((s) => s.name)).toEqual([sub.name]);
    const [all] = await h.pubsub.getSubscriptions();
    expect(all.map((s) => s.name)).toContain(sub.name);
    expect(await codeOf(topic.createSubscription("crud-sub"))).toBe(status.ALREADY_EXISTS);
    // Deleting the topic leaves the subscription, attached to _deleted-topic_ (as on Google).
    await topic.delete();
    const [orphan] = await sub.getMetadata();
    expect(orphan.topic).toBe("_deleted-topic_");
    await sub.delete();
    expect(await codeOf(sub.getMetadata())).toBe(status.NOT_FOUND);
  });

  it("ends open streams with NOT_FOUND when their subscription is deleted", async () => {
    const [topic] = await h.pubsub.createTopic("doomed-topic");
    const [sub] = await topic.createSubscription("doomed-sub");
    const errors: Array<{ code?: number }> = [];
    const got: string[] = [];
    sub.on("error", (e: { code?: number }) => errors.push(e));
    sub.on("message", (m: { id: string; ack(): void }) => {
      got.push(m.id);
      m.ack();
    });
    const id = await topic.publishMessage({ data: Buffer.from("first") });
    await waitFor(() => got.includes(id), 20_000, "the stream to deliver");
    await h.pubsub.subscription("doomed-sub").delete();
    await waitFor(() => errors.length > 0, 20_000, "the stream to end");
    expect(errors[0]?.code).toBe(status.NOT_FOUND);
    await sub.close();
  });

  it("detaches a subscription: no more messages, pulls refused with FAILED_PRECONDITION", async () => {
    const [topic] = await h.pubsub.createTopic("detach-topic");
    const [sub] = await topic.createSubscription("detach-sub");
    await topic.publishMessage({ data: Buffer.from("before") });
    await h.pubsub.detachSubscription(sub.name);
    const [meta] = await sub.getMetadata();
    expect(meta.detached).toBe(true);
    await topic.publishMessage({ data: Buffer.from("after") });
    expect(h.emulator.broker.queue(sub.name).size).toBe(0);
    expect(await codeOf(h.subscriberClient.pull({ subscription: sub.name, maxMessages: 1 }))).toBe(
      status.FAILED_PRECONDITION,
    );
  });

  it("answers INVALID_ARGUMENT to bad names and settings", async () => {
    expect(await codeOf(h.pubsub.createTopic("ab"))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(h.pubsub.createTopic("goog-reserved"))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(h.pubsub.createTopic("9starts-with-digit"))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(publisher.createTopic({ name: `projects/${PROJECT}/topics/a/b/c` }))).toBe(
      status.INVALID_ARGUMENT,
    );
    expect(await codeOf(publisher.createTopic({ name: "" }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(publisher.listTopics({ project: "not-a-project" }))).toBe(status.INVALID_ARGUMENT);
    const [topic] = await h.pubsub.createTopic("settings-topic");
    expect(await codeOf(topic.createSubscription("bad-deadline", { ackDeadlineSeconds: 5 }))).toBe(
      status.INVALID_ARGUMENT,
    );
    expect(
      await codeOf(
        topic.createSubscription("bad-dlq", {
          deadLetterPolicy: { deadLetterTopic: topic.name, maxDeliveryAttempts: 2 },
        }),
      ),
    ).toBe(status.INVALID_ARGUMENT);
    expect(
      await codeOf(topic.createSubscription("bad-push", { pushConfig: { pushEndpoint: "ftp://x" } })),
    ).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(publisher.publish({ topic: topic.name, messages: [{}] }))).toBe(
      status.INVALID_ARGUMENT,
    );
    expect(
      await codeOf(
        publisher.publish({
          topic: topic.name,
          messages: [{ data: Buffer.from("x"), attributes: { googx: "1" } }],
        }),
      ),
    ).toBe(status.INVALID_ARGUMENT);
    const [sub] = await topic.createSubscription("settings-sub");
    expect(
      await codeOf(
        h.subscriberClient.modifyAckDeadline({
          subscription: sub.name,
          ackIds: ["1-1"],
          ackDeadlineSeconds: 601,
        }),
      ),
    ).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(h.subscriberClient.pull({ subscription: sub.name, maxMessages: 0 }))).toBe(
      status.INVALID_ARGUMENT,
    );
  });

  it("refuses messages over 10 MB with INVALID_ARGUMENT and keeps serving", async () => {
    const [topic] = await h.pubsub.createTopic("big-topic");
    const [sub] = await topic.createSubscription("big-sub");
    const big = Buffer.alloc(10 * 1024 * 1024 + 1, 1);
    expect(await codeOf(publisher.publish({ topic: topic.name, messages: [{ data: big }] }))).toBe(
      status.INVALID_ARGUMENT,
    );
    expect(await codeOf(topic.publishMessage({ data: big }))).toBe(status.INVALID_ARGUMENT);
    // Far past the transport limit: refused by gRPC itself (sent raw: the client would retry it).
    const raw = new Client(`127.0.0.1:${h.emulator.port}`, credentials.createInsecure());
    const hugeCode = await new Promise<number | undefined>((resolve) => {
      raw.makeUnaryRequest(
        "/google.pubsub.v1.Publisher/Publish",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(24 * 1024 * 1024, 2),
        new Metadata(),
        {},
        (err) => resolve(err?.code),
      );
    });
    raw.close();
    expect(hugeCode).toBe(status.RESOURCE_EXHAUSTED);
    const id = await topic.publishMessage({ data: Buffer.from("small") });
    const [res] = await h.subscriberClient.pull({ subscription: sub.name, maxMessages: 5 });
    expect(res.receivedMessages?.map((m) => m.message?.messageId)).toEqual([id]);
  });

  it("answers NOT_FOUND for unknown topics and subscriptions", async () => {
    const unknownSub = `projects/${PROJECT}/subscriptions/missing-sub`;
    expect(await codeOf(h.pubsub.topic("missing-topic").publishMessage({ data: Buffer.from("x") }))).toBe(
      status.NOT_FOUND,
    );
    expect(await codeOf(h.pubsub.topic("missing-topic").createSubscription("orphan-sub"))).toBe(
      status.NOT_FOUND,
    );
    expect(await codeOf(h.subscriberClient.pull({ subscription: unknownSub, maxMessages: 1 }))).toBe(
      status.NOT_FOUND,
    );
    expect(await codeOf(h.subscriberClient.acknowledge({ subscription: unknownSub, ackIds: ["1-1"] }))).toBe(
      status.NOT_FOUND,
    );
    expect(
      await codeOf(
        h.subscriberClient.modifyAckDeadline({
          subscription: unknownSub,
          ackIds: ["1-1"],
          ackDeadlineSeconds: 0,
        }),
      ),
    ).toBe(status.NOT_FOUND);
    expect(await codeOf(h.pubsub.subscription("missing-sub").getMetadata())).toBe(status.NOT_FOUND);
  });

  it("survives undecodable bytes and garbage on a stream", async () => {
    const raw = new Client(`127.0.0.1:${h.emulator.port}`, credentials.createInsecure());
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99]);
    const unaryCode = await new Promise<number | undefined>((resolve) => {
      raw.makeUnaryRequest(
        "/google.pubsub.v1.Publisher/Publish",
        (b: Buffer) => b,
        (b: Buffer) => b,
        garbage,
        new Metadata(),
        {},
        (err) => resolve(err?.code),
      );
    });
    expect(unaryCode).toBe(status.INTERNAL);
    const streamCode = await new Promise<number>((resolve) => {
      const call = raw.makeBidiStreamRequest(
        "/google.pubsub.v1.Subscriber/StreamingPull",
        (b: Buffer) => b,
        (b: Buffer) => b,
        new Metadata(),
        {},
      );
      call.on("data", () => {});
      call.on("error", () => {});
      call.on("status", (s) => resolve(s.code));
      call.write(Buffer.alloc(0)); // an empty first request: no subscription
    });
    expect(streamCode).toBe(status.INVALID_ARGUMENT);
    raw.close();
    const [topic] = await h.pubsub.createTopic("after-garbage");
    expect(topic.name).toContain("after-garbage");
  });
});
