import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, startHarness } from "./helpers.js";

// Retention is counted in minutes and days: the emulator takes an injected clock, moved here by hand.
describe("pubsub emulator: message retention", () => {
  let h: Harness;
  let now = Date.parse("2026-01-01T00:00:00Z");
  beforeAll(async () => {
    h = await startHarness({ clock: { now: () => now } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("drops unacknowledged messages older than the subscription's retention", async () => {
    const [topic] = await h.pubsub.createTopic("retention-topic");
    const [sub] = await topic.createSubscription("retention-sub", {
      messageRetentionDuration: { seconds: 600 },
    });
    const [meta] = await sub.getMetadata();
    expect(Number(meta.messageRetentionDuration?.seconds)).toBe(600);
    await topic.publishMessage({ data: Buffer.from("old") });
    now += 5 * 60_000;
    const id = await topic.publishMessage({ data: Buffer.from("young") });
    now += 5 * 60_000 + 1_000; // "old" is now 10 min 1 s old, "young" 5 min 1 s
    h.emulator.broker.tick();
    const [res] = await h.subscriberClient.pull({ subscription: sub.name, maxMessages: 10 });
    const got = res.receivedMessages ?? [];
    expect(got.map((m) => m.message?.messageId)).toEqual([id]);
    expect(new Date(Number(got[0]?.message?.publishTime?.seconds) * 1000).toISOString()).toBe(
      "2026-01-01T00:05:00.000Z",
    );
  });
});
