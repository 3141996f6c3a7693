import type { ReceivedMessageOut, StoredMessage, SubscriptionConfig } from "./types.js";
import { durationMs, msToTimestamp } from "./types.js";

/** Something that takes leased messages: a StreamingPull stream, a pending Pull, a push worker. */
export interface Consumer {
  /** Ack deadline, in seconds, of the messages handed to this consumer. */
  readonly ackDeadlineSeconds: number;
  /** Messages and bytes this consumer takes right now (flow control). */
  room(): { messages: number; bytes: number };
  /** Hand over freshly leased messages. */
  deliver(leases: Lease[]): void;
  /** Counted by the queue: leases this consumer holds. */
  outstanding: number;
  outstandingBytes: number;
}

/** One delivery of one message; `ackId` names it in Acknowledge and ModifyAckDeadline. */
export interface Lease {
  ackId: string;
  entry: Entry;
  deadline: number;
  consumer: Consumer | undefined;
}

/** A message not yet acknowledged on this subscription. */
export interface Entry {
  msg: StoredMessage;
  /** Deliveries so far; the delivery attempt counter of the dead-letter policy. */
  attempts: number;
  state: "ready" | "leased" | "delayed" | "gone";
  lease: Lease | undefined;
  availableAt: number;
}

/** What the queue asks of its owner. */
export interface QueueHooks {
  now(): number;
  /** Run `pump` soon (coalesced). */
  schedulePump(): void;
  /** A message ran out of delivery attempts: forward it to the dead-letter topic. */
  deadLetter(msg: StoredMessage, attempts: number): void;
}

const MAX_BATCH = 500;

/**
 * The delivery state of one subscription: ready messages, leases with deadlines, backoff, per-key
 * ordering, dead-letter counting. Pure bookkeeping driven by calls and `tick(now)`; no I/O, no timers.
 */
export class SubscriptionQueue {
  readonly entries = new Map<number, Entry>();
  readonly leases = new Map<string, Lease>();
  private readonly consumers: Consumer[] = [];
  private rr = 0;
  private fifo: Entry[] = [];
  private fifoHead = 0;
  private readonly keyed = new Map<string, Entry[]>();
  private readonly keyBusy = new Map<string, number>();
  private delayed: Entry[] = [];
  private nextLeaseExpiry = Number.POSITIVE_INFINITY;
  private nextDelayed = Number.POSITIVE_INFINITY;
  private lastRetentionCheck = 0;

  constructor(
    public config: SubscriptionConfig,
    private readonly hooks: QueueHooks,
  ) {}

  /** Unacknowledged messages (ready, leased or waiting out a backoff). */
  get size(): number {
    return this.entries.size;
  }

  /** Add a newly published message. */
  enqueue(msg: StoredMessage): void {
    if (this.entries.has(msg.seq)) return;
    const entry: Entry = { msg, attempts: 0, state: "ready", lease: undefined, availableAt: 0 };
    this.entries.set(msg.seq, entry);
    this.pushReady(entry, false);
    if (this.consumers.length > 0) this.hooks.schedulePump();
  }

  addConsumer(c: Consumer): void {
    this.consumers.push(c);
    this.hooks.schedulePump();
  }

  /** Stop handing messages to `c`; its leases run until acked or expired, as on Google. */
  removeConsumer(c: Consumer): void {
    const i = this.consumers.indexOf(c);
    if (i >= 0) this.consumers.splice(i, 1);
  }

  /** A consumer has room again (flow control released): deliver soon. */
  wake(): void {
    if (this.consumers.length > 0) this.hooks.schedulePump();
  }

  /** Whether any consumer is attached. */
  get hasConsumers(): boolean {
    return this.consumers.length > 0;
  }

  /** Lease ready messages to consumers with room, round-robin, in batches. */
  pump(): void {
    let progressed = true;
    while (progressed && this.consumers.length > 0 && this.hasReady()) {
      progressed = false;
      for (let n = 0; n < this.consumers.length; n++) {
        const c = this.consumers[(this.rr + n) % this.consumers.length];
        if (!c) continue;
        const room = c.room();
        if (room.messages <= 0 || room.bytes <= 0) continue;
        const batch = this.take(Math.min(room.messages, MAX_BATCH), room.bytes);
        if (batch.length === 0) break;
        const now = this.hooks.now();
        const leases = batch.map((e) => this.lease(e, c, now));
        progressed = true;
        c.deliver(leases);
        if (this.consumers.length === 0) break;
      }
      this.rr = (this.rr + 1) % Math.max(1, this.consumers.length);
    }
  }

  /**
   * Acknowledge by ack id; returns the seqs removed. Only the ack id of a message's current lease
   * counts: one from an expired or revoked lease is ignored (the message is redelivered), as on Google.
   */
  acknowledge(ackIds: readonly string[]): number[] {
    const removed: number[] = [];
    for (const ackId of ackIds) {
      const lease = this.leases.get(ackId);
      if (!lease) continue;
      this.remove(lease.entry);
      removed.push(lease.entry.msg.seq);
    }
    if (removed.length > 0 && this.consumers.length > 0) this.hooks.schedulePump();
    return removed;
  }

  /** Remove messages by seq whatever their state (replaying acks from the journal). */
  drop(seqs: readonly number[]): void {
    for (const seq of seqs) {
      const entry = this.entries.get(seq);
      if (entry) this.remove(entry);
    }
  }

  /** ModifyAckDeadline: extend current leases, or (0 seconds) nack them. Stale ids are ignored. */
  modifyAckDeadline(ackIds: readonly string[], seconds: number): void {
    const now = this.hooks.now();
    for (const ackId of ackIds) {
      const lease = this.leases.get(ackId);
      if (!lease) continue;
      if (seconds === 0) this.redeliver(lease.entry, now);
      else {
        lease.deadline = now + seconds * 1000;
        if (lease.deadline < this.nextLeaseExpiry) this.nextLeaseExpiry = lease.deadline;
      }
    }
    if (this.consumers.length > 0) this.hooks.schedulePump();
  }

  /** Nack every lease a consumer holds (used when a push attempt fails). */
  nack(lease: Lease): void {
    if (this.leases.get(lease.ackId) !== lease) return;
    this.redeliver(lease.entry, this.hooks.now());
    if (this.consumers.length > 0) this.hooks.schedulePump();
  }

  /** Expire leases past their deadline, release backed-off messages, drop messages past retention. */
  tick(now: number): void {
    if (now >= this.nextLeaseExpiry) {
      let next = Number.POSITIVE_INFINITY;
      for (const lease of [...this.leases.values()]) {
        if (lease.deadline <= now) this.redeliver(lease.entry, now);
        else if (lease.deadline < next) next = lease.deadline;
      }
      this.nextLeaseExpiry = next;
    }
    if (now >= this.nextDelayed) {
      const still: Entry[] = [];
      let next = Number.POSITIVE_INFINITY;
      for (const e of this.delayed) {
        if (e.state !== "delayed") continue;
        if (e.availableAt <= now) {
          this.unbusy(e);
          e.state = "ready";
          this.pushReady(e, true);
        } else {
          still.push(e);
          next = Math.min(next, e.availableAt);
        }
      }
      this.delayed = still;
      this.nextDelayed = next;
    }
    if (now - this.lastRetentionCheck >= 1000) {
      this.lastRetentionCheck = now;
      const retention = durationMs(this.config.messageRetentionDuration) ?? Number.POSITIVE_INFINITY;
      for (const entry of this.entries.values()) {
        if (entry.msg.publishTimeMs + retention > now) break;
        this.remove(entry);
      }
    }
    if (this.consumers.length > 0 && this.hasReady()) this.hooks.schedulePump();
  }

  /** Drop everything (subscription deleted). */
  clear(): void {
    for (const e of this.entries.values()) e.state = "gone";
    this.entries.clear();
    this.leases.clear();
    this.fifo = [];
    this.fifoHead = 0;
    this.keyed.clear();
    this.keyBusy.clear();
    this.delayed = [];
    this.consumers.length = 0;
  }

  /** The wire form of a lease, as Pull and StreamingPull answer it. */
  received(lease: Lease): ReceivedMessageOut {
    const m = lease.entry.msg;
    return {
      ackId: lease.ackId,
      message: {
        data: m.data,
        attributes: m.attributes,
        messageId: String(m.seq),
        publishTime: msToTimestamp(m.publishTimeMs),
        orderingKey: m.orderingKey,
      },
      deliveryAttempt: this.config.deadLetterPolicy ? lease.entry.attempts : 0,
    };
  }

  private ordered(entry: Entry): boolean {
    return this.config.enableMessageOrdering === true && entry.msg.orderingKey !== "";
  }

  private hasReady(): boolean {
    return this.fifoHead < this.fifo.length || this.keyed.size > 0;
  }

  private pushReady(entry: Entry, sorted: boolean): void {
    if (!this.ordered(entry)) {
      this.fifo.push(entry);
      return;
    }
    const key = entry.msg.orderingKey;
    let list = this.keyed.get(key);
    if (!list) {
      list = [];
      this.keyed.set(key, list);
    }
    if (!sorted || list.length === 0 || (list[list.length - 1]?.msg.seq ?? 0) < entry.msg.seq)
      list.push(entry);
    else {
      const at = list.findIndex((e) => e.msg.seq > entry.msg.seq);
      list.splice(at < 0 ? list.length : at, 0, entry);
    }
  }

  private take(maxMessages: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let bytes = 0;
    const fits = (e: Entry) => out.length === 0 || bytes + e.msg.size <= maxBytes;
    for (const [key, list] of this.keyed) {
      if (out.length >= maxMessages) break;
      if ((this.keyBusy.get(key) ?? 0) > 0) continue;
      let i = 0;
      while (i < list.length && out.length < maxMessages) {
        const e = list[i] as Entry;
        if (!fits(e)) break;
        out.push(e);
        bytes += e.msg.size;
        i++;
      }
      if (i === list.length) this.keyed.delete(key);
      else list.splice(0, i);
    }
    while (this.fifoHead < this.fifo.length && out.length < maxMessages) {
      const e = this.fifo[this.fifoHead] as Entry;
      if (e.state !== "ready") {
        this.fifoHead++;
        continue;
      }
      if (!fits(e)) break;
      out.push(e);
      bytes += e.msg.size;
      this.fifoHead++;
    }
    if (this.fifoHead > 1024 && this.fifoHead * 2 > this.fifo.length) {
      this.fifo = this.fifo.slice(this.fifoHead);
      this.fifoHead = 0;
    }
    return out;
  }

  private lease(entry: Entry, consumer: Consumer, now: number): Lease {
    entry.attempts++;
    const lease: Lease = {
      ackId: `${entry.msg.seq}-${entry.attempts}`,
      entry,
      deadline: now + consumer.ackDeadlineSeconds * 1000,
      consumer,
    };
    entry.state = "leased";
    entry.lease = lease;
    this.busy(entry);
    this.leases.set(lease.ackId, lease);
    consumer.outstanding++;
    consumer.outstandingBytes += entry.msg.size;
    if (lease.deadline < this.nextLeaseExpiry) this.nextLeaseExpiry = lease.deadline;
    return lease;
  }

  private release(entry: Entry): void {
    const lease = entry.lease;
    if (!lease) return;
    this.leases.delete(lease.ackId);
    if (lease.consumer) {
      lease.consumer.outstanding--;
      lease.consumer.outstandingBytes -= entry.msg.size;
    }
    entry.lease = undefined;
    this.unbusy(entry);
  }

  private busy(entry: Entry): void {
    if (!this.ordered(entry)) return;
    const key = entry.msg.orderingKey;
    this.keyBusy.set(key, (this.keyBusy.get(key) ?? 0) + 1);
  }

  private unbusy(entry: Entry): void {
    if (!this.ordered(entry)) return;
    const key = entry.msg.orderingKey;
    const n = (this.keyBusy.get(key) ?? 0) - 1;
    if (n <= 0) this.keyBusy.delete(key);
    else this.keyBusy.set(key, n);
  }

  private remove(entry: Entry): void {
    if (entry.state === "leased") this.release(entry);
    else if (entry.state === "delayed") this.unbusy(entry);
    else if (entry.state === "ready" && this.ordered(entry)) {
      const list = this.keyed.get(entry.msg.orderingKey);
      const i = list?.indexOf(entry) ?? -1;
      if (list && i >= 0) {
        list.splice(i, 1);
        if (list.length === 0) this.keyed.delete(entry.msg.orderingKey);
      }
    }
    entry.state = "gone";
    this.entries.delete(entry.msg.seq);
  }

  /** A lease ended without an ack (nack or expiry): dead-letter, back off, or make ready again. */
  private redeliver(entry: Entry, now: number): void {
    if (entry.state !== "leased") return;
    this.release(entry);
    const dlp = this.config.deadLetterPolicy;
    if (dlp?.deadLetterTopic && entry.attempts >= (dlp.maxDeliveryAttempts ?? 5)) {
      this.remove(entry);
      this.hooks.deadLetter(entry.msg, entry.attempts);
      return;
    }
    if (this.ordered(entry)) this.revokeLaterLeases(entry);
    const backoff = this.backoffMs(entry.attempts);
    if (backoff > 0) {
      entry.state = "delayed";
      entry.availableAt = now + backoff;
      this.busy(entry);
      this.delayed.push(entry);
      if (entry.availableAt < this.nextDelayed) this.nextDelayed = entry.availableAt;
    } else {
      entry.state = "ready";
      this.pushReady(entry, true);
    }
  }

  // Ordering keys: when one message of a key goes back, every later message of that key that is
  // out on lease goes back too, so the key is redelivered in order (as Google does).
  private revokeLaterLeases(entry: Entry): void {
    const key = entry.msg.orderingKey;
    for (const lease of [...this.leases.values()]) {
      const other = lease.entry;
      if (other.msg.orderingKey !== key || other.msg.seq <= entry.msg.seq) continue;
      this.release(other);
      other.state = "ready";
      this.pushReady(other, true);
    }
  }

  private backoffMs(attempts: number): number {
    const rp = this.config.retryPolicy;
    if (!rp) return 0;
    const min = durationMs(rp.minimumBackoff) ?? 10_000;
    const max = durationMs(rp.maximumBackoff) ?? 600_000;
    return Math.min(max, min * 2 ** Math.max(0, attempts - 1));
  }
}
