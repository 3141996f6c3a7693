import { type ServerDuplexStream, status } from "@grpc/grpc-js";
import type { PubSubBroker, PubSubLogger } from "./broker.js";
import { PubSubInvalidArgument } from "./errors.js";
import { toServiceError } from "./grpc-calls.js";
import type { Consumer, Lease, SubscriptionQueue } from "./subscription-queue.js";

interface StreamingPullRequest {
  subscription?: string;
  ackIds?: string[];
  modifyDeadlineSeconds?: number[];
  modifyDeadlineAckIds?: string[];
  streamAckDeadlineSeconds?: number;
  clientId?: string;
  maxOutstandingMessages?: string | number;
  maxOutstandingBytes?: string | number;
}

type Call = ServerDuplexStream<StreamingPullRequest, unknown>;

// Flow control as the client asks for it on the first request; 0 means "no limit" on Google, but an
// unbounded stream would only fill socket buffers, so a generous cap stands in.
const UNLIMITED_MESSAGES = 10_000;

class StreamConsumer implements Consumer {
  outstanding = 0;
  outstandingBytes = 0;
  ackDeadlineSeconds: number;
  private blocked = false;
  closed = false;

  constructor(
    private readonly call: Call,
    readonly queue: SubscriptionQueue,
    first: StreamingPullRequest,
    private readonly maxMessages: number,
    private readonly maxBytes: number,
  ) {
    this.ackDeadlineSeconds = first.streamAckDeadlineSeconds ?? 10;
    call.on("drain", () => {
      this.blocked = false;
      this.queue.wake();
    });
  }

  room() {
    if (this.closed || this.blocked) return { messages: 0, bytes: 0 };
    return { messages: this.maxMessages - this.outstanding, bytes: this.maxBytes - this.outstandingBytes };
  }

  deliver(leases: Lease[]): void {
    const q = this.queue;
    const ok = this.call.write({
      receivedMessages: leases.map((l) => q.received(l)),
      subscriptionProperties: {
        exactlyOnceDeliveryEnabled: q.config.enableExactlyOnceDelivery === true,
        messageOrderingEnabled: q.config.enableMessageOrdering === true,
      },
    });
    if (!ok) this.blocked = true;
  }
}

function checkStreamDeadline(seconds: number | undefined, first: boolean): void {
  const s = seconds ?? 0;
  if (first && s === 0)
    throw new PubSubInvalidArgument("stream_ack_deadline_seconds: required on the first request");
  if (s !== 0 && (!Number.isInteger(s) || s < 10 || s > 600)) {
    throw new PubSubInvalidArgument(`stream_ack_deadline_seconds: must be between 10 and 600, got ${s}`);
  }
}

function limit(v: string | number | undefined, fallback: number): number {
  const n = Number(v ?? 0);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

/** Serves StreamingPull calls and ends them with NOT_FOUND when their subscription is deleted. */
export class StreamingPullHandler {
  private readonly open = new Map<
    string,
    Set<{ consumer: StreamConsumer; fail: (code: status, msg: string) => void }>
  >();

  constructor(
    private readonly broker: PubSubBroker,
    private readonly logger: PubSubLogger,
  ) {
    broker.onSubscriptionChange((name, config) => {
      if (config && !config.detached) return;
      for (const s of this.open.get(name) ?? []) {
        s.fail(
          config ? status.FAILED_PRECONDITION : status.NOT_FOUND,
          `Subscription ${config ? "detached" : "deleted"}: ${name}`,
        );
      }
    });
  }

  /** Number of open streams (test hook). */
  get openStreams(): number {
    let n = 0;
    for (const s of this.open.values()) n += s.size;
    return n;
  }

  readonly handle = (call: Call): void => {
    let consumer: StreamConsumer | undefined;
    let entry: { consumer: StreamConsumer; fail: (code: status, msg: string) => void } | undefined;
    let finished = false;
    const cleanup = () => {
      if (finished) return;
      finished = true;
      if (consumer) {
        consumer.closed = true;
        consumer.queue.removeConsumer(consumer);
        const name = consumer.queue.config.name;
        const set = this.open.get(name);
        if (entry && set) {
          set.delete(entry);
          if (set.size === 0) this.open.delete(name);
        }
      }
    };
    const fail = (code: status, details: string) => {
      if (finished) return;
      cleanup();
      call.emit("error", { code, details });
    };
    call.on("data", (req: StreamingPullRequest) => {
      if (finished) return;
      try {
        if (!consumer) {
          const q = this.broker.pullableQueue(req.subscription);
          checkStreamDeadline(req.streamAckDeadlineSeconds, true);
          const c = new StreamConsumer(
            call,
            q,
            req,
            limit(req.maxOutstandingMessages, UNLIMITED_MESSAGES),
            limit(req.maxOutstandingBytes, Number.POSITIVE_INFINITY),
          );
          consumer = c;
          entry = { consumer: c, fail };
          let set = this.open.get(q.config.name);
          if (!set) {
            set = new Set();
            this.open.set(q.config.name, set);
          }
          set.add(entry);
          q.addConsumer(c);
        } else if (req.subscription && req.subscription !== consumer.queue.config.name) {
          throw new PubSubInvalidArgument("subscription: may only be set on the first request of a stream");
        } else {
          checkStreamDeadline(req.streamAckDeadlineSeconds, false);
          if (req.streamAckDeadlineSeconds) consumer.ackDeadlineSeconds = req.streamAckDeadlineSeconds;
        }
        this.applyAcks(consumer, req, fail);
      } catch (e) {
        const err = toServiceError(e, this.logger);
        fail(err.code ?? status.INTERNAL, err.details ?? "error");
      }
    });
    call.on("end", () => {
      cleanup();
      call.end();
    });
    call.on("cancelled", cleanup);
    call.on("error", cleanup);
    call.on("close", cleanup);
  };

  private applyAcks(
    c: StreamConsumer,
    req: StreamingPullRequest,
    fail: (code: status, msg: string) => void,
  ): void {
    const ids = req.modifyDeadlineAckIds ?? [];
    const secs = req.modifyDeadlineSeconds ?? [];
    if (ids.length !== secs.length) {
      throw new PubSubInvalidArgument(
        "modify_deadline_seconds and modify_deadline_ack_ids must have the same length",
      );
    }
    for (const s of secs) {
      if (!Number.isInteger(s) || s < 0 || s > 600) {
        throw new PubSubInvalidArgument(`modify_deadline_seconds: must be between 0 and 600, got ${s}`);
      }
    }
    const name = c.queue.config.name;
    for (let i = 0; i < ids.length; i++) {
      this.broker.modifyAckDeadline(name, [ids[i] as string], secs[i] ?? 0);
    }
    if (req.ackIds && req.ackIds.length > 0) {
      this.broker.acknowledge(name, req.ackIds).catch((e: unknown) => {
        const err = toServiceError(e, this.logger);
        fail(err.code ?? status.INTERNAL, err.details ?? "error");
      });
    }
  }
}
