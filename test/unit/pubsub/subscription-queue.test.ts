import { describe, expect, it } from "vitest";
import { validateSubscription } from "../../../infra/local/pubsub/config.js";
import type { Consumer, Lease } from "../../../infra/local/pubsub/subscription-queue.js";
import { SubscriptionQueue } from "../../../infra/local/pubsub/subscription-queue.js";
import type { StoredMessage, SubscriptionConfig } from "../../../infra/local/pubsub/types.js";

const SUB = "projects/p/subscriptions/sub-1";
const TOPIC = "projects/p/topics/topic-1";

function setup(extra: Record<string, unknown> = {}) {
  let now = 1_000_000;
  const deadLettered: Array<{ seq: number; attempts: number }> = [];
  const config: SubscriptionConfig = validateSubscription({ name: SUB, topic: TOPIC, ...extra });
  const q = new SubscriptionQueue(config, {
    now: () => now,
    schedulePump: () => {},
    deadLetter: (msg, attempts) => deadLettered.push({ seq: msg.seq, attempts }),
  });
  return {
    q,
    deadLettered,
    advance: (ms: number) => {
      now += ms;
      q.tick(now);
    },
    now: () => now,
  };
}

let nextSeq = 1;
function message(orderingKey = "", data = "x"): StoredMessage {
  const buf = Buffer.from(data);
  return {
    seq: nextSeq++,
    data: buf,
    attributes: {},
    orderingKey,
    publishTimeMs: 1_000_000,
    size: buf.length,
  };
}

// A consumer that takes up to `max` outstanding messages and records what it got.
function consumer(max = 100, deadline = 10): Consumer & { got: Lease[] } {
  return {
    ackDeadlineSeconds: deadline,
    outstanding: 0,
    outstandingBytes: 0,
    got: [],
    room() {
      return { messages: max - this.outstanding, bytes: Number.POSITIVE_INFINITY };
    },
    deliver(leases: Lease[]) {
      this.got.push(...leases);
    },
  };
}

describe("SubscriptionQueue", () => {
  it("leases ready messages within the consumer's flow control", () => {
    const { q } = setup();
    const c = consumer(2);
    q.addConsumer(c);
    for (let i = 0; i < 5; i++) q.enqueue(message());
    q.pump();
    expect(c.got).toHaveLength(2);
    q.acknowledge([c.got[0]?.ackId ?? ""]);
    q.pump();
    expect(c.got).toHaveLength(3);
    expect(q.size).toBe(4);
  });

  it("redelivers after the ack deadline with a new ack id; the stale ack id no longer acks", () => {
    const { q, advance } = setup();
    const c = consumer();
    q.addConsumer(c);
    q.enqueue(message());
    q.pump();
    const first = c.got[0] as Lease;
    advance(9_999);
    q.pump();
    expect(c.got).toHaveLength(1);
    advance(2);
    q.pump();
    expect(c.got).toHaveLength(2);
    const second = c.got[1] as Lease;
    expect(second.ackId).not.toBe(first.ackId);
    expect(second.entry.attempts).toBe(2);
    expect(q.acknowledge([first.ackId])).toEqual([]);
    expect(q.acknowledge([second.ackId])).toEqual([second.entry.msg.seq]);
    expect(q.size).toBe(0);
  });

  it("extends a lease with ModifyAckDeadline and nacks with 0", () => {
    const { q, advance } = setup();
    const c = consumer();
    q.addConsumer(c);
    q.enqueue(message());
    q.pump();
    const lease = c.got[0] as Lease;
    q.modifyAckDeadline([lease.ackId], 60);
    advance(30_000);
    q.pump();
    expect(c.got).toHaveLength(1);
    q.modifyAckDeadline([lease.ackId], 0);
    q.pump();
    expect(c.got).toHaveLength(2);
  });

  it("holds a nacked message back by the retry policy's exponential backoff", () => {
    const { q, advance } = setup({
      retryPolicy: { minimumBackoff: { seconds: 1 }, maximumBackoff: { seconds: 3 } },
    });
    const c = consumer();
    q.addConsumer(c);
    q.enqueue(message());
    const nackLast = () => {
      q.pump();
      q.modifyAckDeadline([c.got[c.got.length - 1]?.ackId ?? ""], 0);
    };
    nackLast(); // attempt 1 → 1 s
    advance(999);
    q.pump();
    expect(c.got).toHaveLength(1);
    advance(1);
    nackLast(); // attempt 2 → 2 s
    expect(c.got).toHaveLength(2);
    advance(1_999);
    q.pump();
    expect(c.got).toHaveLength(2);
    advance(1);
    nackLast(); // attempt 3 → 4 s capped at 3 s
    advance(2_999);
    q.pump();
    expect(c.got).toHaveLength(3);
    advance(1);
    q.pump();
    expect(c.got).toHaveLength(4);
  });

  it("dead-letters after max_delivery_attempts and reports the attempt in deliveries", () => {
    const { q, deadLettered } = setup({
      deadLetterPolicy: { deadLetterTopic: "projects/p/topics/dead", maxDeliveryAttempts: 5 },
    });
    const c = consumer();
    q.addConsumer(c);
    const m = message();
    q.enqueue(m);
    for (let i = 0; i < 5; i++) {
      q.pump();
      const lease = c.got[c.got.length - 1] as Lease;
      expect(q.received(lease).deliveryAttempt).toBe(i + 1);
      q.modifyAckDeadline([lease.ackId], 0);
    }
    expect(deadLettered).toEqual([{ seq: m.seq, attempts: 5 }]);
    expect(q.size).toBe(0);
  });

  it("delivers one batch per ordering key at a time and redelivers the rest of the key in order on nack", () => {
    const { q } = setup({ enableMessageOrdering: true });
    const c = consumer();
    q.addConsumer(c);
    const a = [message("a"), message("a"), message("a")];
    const b = [message("b")];
    for (const m of [a[0], b[0], a[1], a[2]]) if (m) q.enqueue(m);
    q.pump();
    const seqs = () => c.got.map((l) => l.entry.msg.seq);
    expect(seqs()).toEqual([a[0]?.seq, a[1]?.seq, a[2]?.seq, b[0]?.seq]);
    q.enqueue(message("a"));
    q.pump();
    expect(c.got).toHaveLength(4); // key a is busy until its batch is done
    q.acknowledge([c.got[0]?.ackId ?? ""]);
    q.modifyAckDeadline([c.got[1]?.ackId ?? ""], 0); // nack a[1]: a[2] comes back too, after it
    q.pump();
    expect(seqs().slice(4)).toEqual([a[1]?.seq, a[2]?.seq, a[2] ? a[2].seq + 2 : 0]);
    expect(q.acknowledge([c.got[2]?.ackId ?? ""])).toEqual([]); // a[2]'s revoked lease
  });

  it("drops messages older than the retention duration", () => {
    const { q, advance } = setup({ messageRetentionDuration: { seconds: 600 } });
    q.enqueue(message());
    advance(599_000);
    expect(q.size).toBe(1);
    advance(2_000);
    expect(q.size).toBe(0);
  });
});
