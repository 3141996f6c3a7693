import { type Message, PubSub } from "@google-cloud/pubsub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  HOST_EVENTS_TOPIC,
  type HostEvent,
  HostEventSchema,
  PREEMPTION_NOTICES_TOPIC,
} from "../../../infra/agent/events.js";
import { createPubSubEventSink, ensureEventTopics } from "../../../infra/agent/pubsub-event-sink.js";
import { type PubSubEmulator, startPubSubEmulator } from "../../../infra/local/pubsub/emulator.js";
import { lease, runParams, startTestAgent, until } from "./helpers.js";

// The client would otherwise probe the GCE metadata server for a project id.
process.env.METADATA_SERVER_DETECTION = "none";

let emulator: PubSubEmulator;
let pubsub: PubSub;
const received: Record<string, Message[]> = { [HOST_EVENTS_TOPIC]: [], [PREEMPTION_NOTICES_TOPIC]: [] };

beforeAll(async () => {
  emulator = await startPubSubEmulator({ port: 0 });
  pubsub = new PubSub({ projectId: "gangway-agent-test", apiEndpoint: emulator.host, emulatorMode: true });
  for (const name of [HOST_EVENTS_TOPIC, PREEMPTION_NOTICES_TOPIC]) {
    const [topic] = await pubsub.createTopic(name);
    const [sub] = await topic.createSubscription(`${name}-test`);
    sub.on("message", (m: Message) => {
      received[name]?.push(m);
      m.ack();
    });
  }
});
afterAll(async () => {
  for (const name of [HOST_EVENTS_TOPIC, PREEMPTION_NOTICES_TOPIC])
    await pubsub.subscription(`${name}-test`).close();
  await pubsub.close();
  await emulator.close();
});

const parse = (m: Message): HostEvent => HostEventSchema.parse(JSON.parse(m.data.toString("utf8")));

describe("Pub/Sub event sink against the embedded emulator", () => {
  it("an agent publishes a workload's exit with its result to the host-events topic", async () => {
    const agent = await startTestAgent({ eventSink: createPubSubEventSink(pubsub) });
    try {
      await agent.client.acquireLease(lease("exec-7", 2, "train-7"));
      const script = `require("node:fs").writeFileSync(process.env.GANGWAY_RESULT_FILE, JSON.stringify({ loss: 0.25 }))`;
      await agent.client.run(
        runParams([process.execPath, "-e", script], {
          leaseId: "exec-7",
          epoch: 2,
          jobId: "train-7",
          attempt: 5,
        }),
      );
      const message = await until(() => received[HOST_EVENTS_TOPIC]?.[0]);
      const event = parse(message);
      expect(event).toMatchObject({ kind: "exited", jobId: "train-7", attempt: 5, epoch: 2, exitCode: 0 });
      expect(event.result).toEqual({ loss: 0.25 });
      expect(message.attributes).toMatchObject({ kind: "exited", jobId: "train-7", attempt: "5" });
    } finally {
      await agent.close();
    }
  });

  it("ensureEventTopics creates missing topics and is idempotent", async () => {
    const other = new PubSub({
      projectId: "gangway-agent-other",
      apiEndpoint: emulator.host,
      emulatorMode: true,
    });
    try {
      await ensureEventTopics(other);
      await ensureEventTopics(other);
      const [topics] = await other.getTopics();
      expect(topics.map((t) => t.name.split("/").pop()).sort()).toEqual([
        HOST_EVENTS_TOPIC,
        PREEMPTION_NOTICES_TOPIC,
      ]);
    } finally {
      await other.close();
    }
  });

  it("a preemption reaches both topics", async () => {
    const sink = createPubSubEventSink(pubsub);
    const notice: HostEvent = {
      version: 1,
      kind: "preempted",
      eventId: "e-1",
      at: Date.now(),
      agent: "127.0.1.9:1",
      address: "127.0.1.9",
      jobId: "train-7",
      attempt: 6,
      sliceName: "v4-16-0",
    };
    await sink.publish(PREEMPTION_NOTICES_TOPIC, notice);
    await sink.publish(HOST_EVENTS_TOPIC, notice);
    const m = await until(() => received[PREEMPTION_NOTICES_TOPIC]?.[0]);
    expect(parse(m)).toEqual(notice);
    await until(() => received[HOST_EVENTS_TOPIC]?.find((x) => parse(x).eventId === "e-1"));
  });
});
