import { afterEach, describe, expect, it, vi } from "vitest";
import { PubSubBroker } from "../../../infra/local/pubsub/broker.js";
import { PushTokenSigner } from "../../../infra/local/pubsub/oidc.js";
import { PushWorker } from "../../../infra/local/pubsub/push-delivery.js";

const silent = { info: () => {}, warn: () => {} };
const TOPIC = "projects/p/topics/events";
const SUB = "projects/p/subscriptions/ingest";

afterEach(() => {
  vi.unstubAllGlobals();
});

/**
 * A push subscription with `count` messages and a worker on an injected clock. The endpoint
 * (a stubbed fetch) answers 503 to the first `failures` POSTs — the first `burst` of them held
 * until all are in flight, so they fail together — then 200.
 */
async function pushing(count: number, failures: number, burst = failures) {
  let now = 1_700_000_000_000;
  const clock = { now: () => now };
  const broker = new PubSubBroker(clock, undefined, silent);
  await broker.createTopic({ name: TOPIC });
  const config = await broker.createSubscription({
    name: SUB,
    topic: TOPIC,
    pushConfig: { pushEndpoint: "http://ingest.test/push/host-events" },
  });
  let posts = 0;
  let release: () => void = () => {};
  const held = new Promise<void>((r) => {
    release = r;
  });
  const endpoints: string[] = [];
  vi.stubGlobal("fetch", async (url: string) => {
    endpoints.push(url);
    posts++;
    if (posts > failures) return new Response("ok", { status: 200 });
    if (posts === burst) release();
    if (posts <= burst) await held;
    return new Response("try again", { status: 503 });
  });
  await broker.publish(
    TOPIC,
    Array.from({ length: count }, (_, i) => ({ data: Buffer.from(`m${i}`), attributes: {} })),
  );
  const queue = broker.queue(SUB);
  const worker = new PushWorker(config, queue, broker, new PushTokenSigner(), silent, 32, clock.now);
  queue.addConsumer(worker);
  queue.pump();
  return {
    broker,
    config,
    queue,
    worker,
    endpoints,
    posts: () => posts,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe("push backoff", () => {
  it("pauses once for a burst of failed pushes, not once per push, and delivers everything after", async () => {
    const p = await pushing(12, 12);
    try {
      // All 12 pushes fail together (an API restarting): nacked, none acked.
      await vi.waitFor(() => expect(p.posts() === 12 && p.worker.outstanding === 0).toBe(true));
      expect(p.posts()).toBe(12);
      expect(p.worker.room().messages).toBe(0);
      // One episode, one step of backoff (100 ms) — not 2^11 of them (the 60 s cap).
      p.advance(250);
      expect(p.worker.room().messages).toBeGreaterThan(0);
      p.queue.pump();
      await vi.waitFor(() => expect(p.queue.size).toBe(0));
      expect(p.posts()).toBe(24);
    } finally {
      p.worker.stop();
    }
  });

  it("escalates when the pushes of the next episode fail again", async () => {
    const p = await pushing(1, 2, 1);
    try {
      await vi.waitFor(() => expect(p.posts() === 1 && p.worker.outstanding === 0).toBe(true));
      p.advance(100);
      p.queue.pump();
      await vi.waitFor(() => expect(p.posts() === 2 && p.worker.outstanding === 0).toBe(true));
      // Pushed after the first pause and failed: the backoff doubles (200 ms).
      p.advance(150);
      expect(p.worker.room().messages).toBe(0);
      p.advance(100);
      expect(p.worker.room().messages).toBeGreaterThan(0);
      p.queue.pump();
      await vi.waitFor(() => expect(p.queue.size).toBe(0));
    } finally {
      p.worker.stop();
    }
  });

  it("lifts the pause when the endpoint is re-pointed", async () => {
    const p = await pushing(2, 2);
    try {
      await vi.waitFor(() => expect(p.posts() === 2 && p.worker.outstanding === 0).toBe(true));
      expect(p.worker.room().messages).toBe(0);
      p.worker.update({
        ...p.config,
        pushConfig: { attributes: {}, pushEndpoint: "http://ingest-2.test/push/host-events" },
      });
      expect(p.worker.room().messages).toBeGreaterThan(0);
      await vi.waitFor(() => expect(p.queue.size).toBe(0));
      expect(p.endpoints.slice(2)).toEqual([
        "http://ingest-2.test/push/host-events",
        "http://ingest-2.test/push/host-events",
      ]);
    } finally {
      p.worker.stop();
    }
  });
});
