import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { v1 } from "@google-cloud/pubsub";
import { credentials } from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { clientFor, PROJECT } from "./helpers.js";

const ROOT = join(import.meta.dirname, "../../..");

interface Child {
  proc: ChildProcess;
  host: string;
  port: number;
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

// The emulator as a real process, through the CLI, resolved once it prints its ready line.
function startChild(stateDir: string): Promise<Child> {
  const proc = spawn(process.execPath, ["bin/gangway.mjs", "pubsub-emulator", "--state-dir", stateDir], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    proc.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    proc.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n") && line) {
        const ready = JSON.parse(line) as { ready: boolean; pubsubEmulatorHost: string };
        const port = Number(ready.pubsubEmulatorHost.split(":")[1]);
        resolve({ proc, host: ready.pubsubEmulatorHost, port, stdout: () => out, exited });
      }
    });
    void exited.then(({ code }) => reject(new Error(`emulator exited (${code}) before ready: ${err}`)));
  });
}

function subscriberFor(port: number): v1.SubscriberClient {
  return new v1.SubscriberClient({ servicePath: "127.0.0.1", port, sslCreds: credentials.createInsecure() });
}

describe("pubsub emulator: durable state across a kill -9", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "gangway-pubsub-"));
  const children: Child[] = [];
  afterAll(() => {
    for (const c of children)
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("keeps every answered, unacknowledged message (in flight included) and forgets acked ones", async () => {
    const first = await startChild(stateDir);
    children.push(first);
    const pubsub = clientFor(first.host);
    const sub1 = subscriberFor(first.port);
    const [topic] = await pubsub.createTopic("durable-topic");
    const [sub] = await topic.createSubscription("durable-sub");
    const ids = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        topic.publishMessage({ data: Buffer.from(`m${i}`), attributes: { i: `${i}` } }),
      ),
    );
    const acked = new Set<string>();
    while (acked.size < 50) {
      const [res] = await sub1.pull({ subscription: sub.name, maxMessages: 50 - acked.size });
      const got = res.receivedMessages ?? [];
      await sub1.acknowledge({ subscription: sub.name, ackIds: got.map((m) => m.ackId ?? "") });
      for (const m of got) acked.add(m.message?.messageId ?? "");
    }
    // Thirty more leased and never acked: in flight when the process dies.
    const [inflight] = await sub1.pull({ subscription: sub.name, maxMessages: 30 });
    expect((inflight.receivedMessages ?? []).length).toBeGreaterThan(0);

    first.proc.kill("SIGKILL");
    expect((await first.exited).signal).toBe("SIGKILL");
    await sub1.close().catch(() => {});
    await pubsub.close().catch(() => {});

    const second = await startChild(stateDir);
    children.push(second);
    const pubsub2 = clientFor(second.host);
    const sub2 = subscriberFor(second.port);
    const [meta] = await pubsub2.subscription("durable-sub").getMetadata();
    expect(meta.topic).toBe(`projects/${PROJECT}/topics/durable-topic`);
    const back = new Map<string, string>();
    for (let round = 0; round < 50 && back.size < 150; round++) {
      const [res] = await sub2.pull({ subscription: sub.name, maxMessages: 1000 });
      const got = res.receivedMessages ?? [];
      for (const m of got) back.set(m.message?.messageId ?? "", m.message?.attributes?.i ?? "");
      if (got.length > 0)
        await sub2.acknowledge({ subscription: sub.name, ackIds: got.map((m) => m.ackId ?? "") });
    }
    const expected = ids.filter((id) => !acked.has(id));
    expect([...back.keys()].sort()).toEqual(expected.sort());
    // Ids keep counting up after the restart.
    const newId = await pubsub2.topic("durable-topic").publishMessage({ data: Buffer.from("after") });
    expect(ids).not.toContain(newId);

    await sub2.close();
    await pubsub2.close();
    second.proc.kill("SIGTERM");
    expect(await second.exited).toEqual({ code: 0, signal: null });
    expect(second.stdout().trim().split("\n")).toHaveLength(1);
  });
});
