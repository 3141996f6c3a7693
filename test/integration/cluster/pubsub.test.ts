import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Message, PubSub } from "@google-cloud/pubsub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../../cli/main.js";
import { HostEventSchema, PREEMPTION_NOTICES_TOPIC } from "../../../infra/agent/events.js";
import { type PubSubEmulator, startPubSubEmulator } from "../../../infra/local/pubsub/emulator.js";

process.env.METADATA_SERVER_DETECTION = "none";
const PROJECT = "gangway-cluster-test";
let emulator: PubSubEmulator;
let dir: string;

beforeAll(async () => {
  emulator = await startPubSubEmulator({ port: 0 });
  dir = mkdtempSync(join(tmpdir(), "gangway-cluster-pubsub-"));
});
afterAll(async () => {
  await emulator.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("gangway cluster --pubsub-project", () => {
  it("creates the topics on the emulator and publishes injected preemptions there", async () => {
    const previous = process.env.PUBSUB_EMULATOR_HOST;
    process.env.PUBSUB_EMULATOR_HOST = emulator.host;
    const controller = new AbortController();
    let stdout = "";
    let stderr = "";
    writeFileSync(join(dir, "token"), "pubsub-cluster-token\n");
    const running = main(
      [
        ...["cluster", "--cluster", "v4-8x2", "--token-file", "token", "--pubsub-project", PROJECT],
        ...["--state-file", join(dir, "state.json"), "--work-dir", "work"],
      ],
      {
        cwd: dir,
        stdout: (t) => {
          stdout += t;
        },
        stderr: (t) => {
          stderr += t;
        },
        signal: controller.signal,
      },
    );
    const pubsub = new PubSub({ projectId: PROJECT, apiEndpoint: emulator.host, emulatorMode: true });
    try {
      await expect.poll(() => stdout.includes('"ready":true'), { timeout: 30_000 }).toBe(true);
      // The topics are made in the background (the emulator may come up after the cluster).
      await expect
        .poll(async () => (await pubsub.topic(PREEMPTION_NOTICES_TOPIC).exists())[0], { timeout: 20_000 })
        .toBe(true);
      const [sub] = await pubsub.topic(PREEMPTION_NOTICES_TOPIC).createSubscription("notices-test");
      const received: Message[] = [];
      sub.on("message", (m: Message) => {
        received.push(m);
        m.ack();
      });
      const preempt = await main(["preempt", "v4-8-1", "--state-file", join(dir, "state.json")], {
        cwd: dir,
        stdout: () => {},
        stderr: (t) => {
          stderr += t;
        },
        signal: new AbortController().signal,
      });
      expect(preempt, stderr).toBe(0);
      await expect.poll(() => received.length, { timeout: 20_000 }).toBe(1);
      const notice = HostEventSchema.parse(JSON.parse(received[0]?.data.toString() ?? "{}"));
      expect(notice).toMatchObject({ kind: "preempted", sliceName: "v4-8-1", address: "127.0.1.2" });
      await sub.close();
    } finally {
      controller.abort();
      expect(await running).toBe(0);
      await pubsub.close();
      if (previous === undefined) delete process.env.PUBSUB_EMULATOR_HOST;
      else process.env.PUBSUB_EMULATOR_HOST = previous;
    }
  });
});
