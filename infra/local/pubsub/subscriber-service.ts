import type { ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { PubSubBroker, PubSubLogger } from "./broker.js";
import { PubSubInvalidArgument } from "./errors.js";
import { unary } from "./grpc-calls.js";
import { snapshotCalls } from "./publisher-service.js";
import type { StreamingPullHandler } from "./streaming-pull.js";
import type { Consumer, Lease, SubscriptionQueue } from "./subscription-queue.js";
import type { ReceivedMessageOut } from "./types.js";

interface SubRequest {
  subscription?: string;
  ackIds?: string[];
  ackDeadlineSeconds?: number;
  maxMessages?: number;
  returnImmediately?: boolean;
  pushConfig?: Record<string, unknown>;
}

/** How long a Pull with nothing to deliver waits before answering empty. */
export const DEFAULT_PULL_WAIT_MS = 5_000;

// A unary Pull is a consumer that takes one batch and leaves.
class PullConsumer implements Consumer {
  outstanding = 0;
  outstandingBytes = 0;
  private done = false;
  get finished(): boolean {
    return this.done;
  }
  constructor(
    readonly ackDeadlineSeconds: number,
    private readonly maxMessages: number,
    private readonly answer: (leases: Lease[]) => void,
  ) {}
  room() {
    return this.done
      ? { messages: 0, bytes: 0 }
      : { messages: this.maxMessages, bytes: Number.POSITIVE_INFINITY };
  }
  deliver(leases: Lease[]): void {
    this.finish(leases);
  }
  finish(leases: Lease[]): void {
    if (this.done) return;
    this.done = true;
    this.answer(leases);
  }
}

function pull(
  q: SubscriptionQueue,
  req: SubRequest,
  call: ServerUnaryCall<SubRequest, unknown>,
  waitMs: number,
): Promise<{ receivedMessages: ReceivedMessageOut[] }> {
  const max = req.maxMessages ?? 0;
  if (!Number.isInteger(max) || max <= 0)
    throw new PubSubInvalidArgument("max_messages: must be a positive integer");
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const consumer = new PullConsumer(q.config.ackDeadlineSeconds, Math.min(max, 1000), (leases) => {
      q.removeConsumer(consumer);
      if (timer) clearTimeout(timer);
      call.off("cancelled", onCancel);
      resolve({ receivedMessages: leases.map((l) => q.received(l)) });
    });
    const onCancel = () => consumer.finish([]);
    call.on("cancelled", onCancel);
    q.addConsumer(consumer);
    q.pump();
    if (req.returnImmediately) consumer.finish([]);
    else if (!consumer.finished) timer = setTimeout(() => consumer.finish([]), waitMs);
  });
}

/** The google.pubsub.v1.Subscriber service over `broker`; StreamingPull comes from `streaming`. */
export function subscriberService(
  broker: PubSubBroker,
  logger: PubSubLogger,
  streaming: StreamingPullHandler,
  pullWaitMs = DEFAULT_PULL_WAIT_MS,
): UntypedServiceImplementation {
  return {
    ...snapshotCalls(logger),
    CreateSubscription: unary(logger, (req: Record<string, unknown>) => broker.createSubscription(req)),
    GetSubscription: unary(logger, (req: SubRequest) => broker.getSubscription(req.subscription)),
    UpdateSubscription: unary(
      logger,
      (req: { subscription?: Record<string, unknown>; updateMask?: { paths?: string[] } }) =>
        broker.updateSubscription(req.subscription, req.updateMask?.paths),
    ),
    ListSubscriptions: unary(logger, (req: { project?: string; pageSize?: number; pageToken?: string }) => {
      const p = broker.listSubscriptions(req.project, req.pageSize, req.pageToken);
      return { subscriptions: p.items, nextPageToken: p.nextPageToken };
    }),
    DeleteSubscription: unary(logger, async (req: SubRequest) => {
      await broker.deleteSubscription(req.subscription);
      return {};
    }),
    ModifyPushConfig: unary(logger, async (req: SubRequest) => {
      await broker.modifyPushConfig(req.subscription, req.pushConfig);
      return {};
    }),
    Acknowledge: unary(logger, async (req: SubRequest) => {
      await broker.acknowledge(req.subscription, req.ackIds);
      return {};
    }),
    ModifyAckDeadline: unary(logger, (req: SubRequest) => {
      broker.modifyAckDeadline(req.subscription, req.ackIds, req.ackDeadlineSeconds);
      return {};
    }),
    Pull: unary(logger, (req: SubRequest, call) =>
      pull(broker.pullableQueue(req.subscription), req, call, pullWaitMs),
    ),
    StreamingPull: streaming.handle,
  };
}
