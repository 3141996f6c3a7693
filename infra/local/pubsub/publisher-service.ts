import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type { PubSubBroker, PubSubLogger } from "./broker.js";
import { unary, unimplemented } from "./grpc-calls.js";
import type { PubsubMessageIn } from "./types.js";

interface NameRequest {
  topic?: string;
  subscription?: string;
}
interface ListRequest {
  project?: string;
  topic?: string;
  pageSize?: number;
  pageToken?: string;
}

/** The google.pubsub.v1.Publisher service over `broker`. */
export function publisherService(broker: PubSubBroker, logger: PubSubLogger): UntypedServiceImplementation {
  return {
    CreateTopic: unary(logger, (req: Record<string, unknown>) => broker.createTopic(req)),
    GetTopic: unary(logger, (req: NameRequest) => broker.getTopic(req.topic)),
    UpdateTopic: unary(
      logger,
      (req: { topic?: Record<string, unknown>; updateMask?: { paths?: string[] } }) =>
        broker.updateTopic(req.topic, req.updateMask?.paths),
    ),
    Publish: unary(logger, async (req: { topic?: string; messages?: PubsubMessageIn[] }) => ({
      messageIds: await broker.publish(req.topic, req.messages),
    })),
    ListTopics: unary(logger, (req: ListRequest) => {
      const p = broker.listTopics(req.project, req.pageSize, req.pageToken);
      return { topics: p.items, nextPageToken: p.nextPageToken };
    }),
    ListTopicSubscriptions: unary(logger, (req: ListRequest) => {
      const p = broker.listTopicSubscriptions(req.topic, req.pageSize, req.pageToken);
      return { subscriptions: p.items, nextPageToken: p.nextPageToken };
    }),
    ListTopicSnapshots: unary(logger, (req: ListRequest) => {
      broker.getTopic(req.topic);
      return { snapshots: [], nextPageToken: "" };
    }),
    DeleteTopic: unary(logger, async (req: NameRequest) => {
      await broker.deleteTopic(req.topic);
      return {};
    }),
    DetachSubscription: unary(logger, async (req: NameRequest) => {
      await broker.detachSubscription(req.subscription);
      return {};
    }),
  };
}

/** Snapshot and seek calls of the Subscriber service, which the emulator does not provide. */
export function snapshotCalls(logger: PubSubLogger): UntypedServiceImplementation {
  return {
    GetSnapshot: unimplemented(logger, "GetSnapshot"),
    ListSnapshots: unary(logger, () => ({ snapshots: [], nextPageToken: "" })),
    CreateSnapshot: unimplemented(logger, "CreateSnapshot"),
    UpdateSnapshot: unimplemented(logger, "UpdateSnapshot"),
    DeleteSnapshot: unimplemented(logger, "DeleteSnapshot"),
    Seek: unimplemented(logger, "Seek"),
  };
}
