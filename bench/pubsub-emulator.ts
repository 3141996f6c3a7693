// Pub/Sub emulator bench: publish→delivery latency (StreamingPull and push), sustained 1 KiB
// messages/s through StreamingPull (in memory and with a state directory), against a baseline of
// a bare gRPC round trip to the same process. The emulator runs in its own process (the CLI), the
// official client in this one, as an application would. Run: npm run bench:pubsub [-- --runs 5]
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { type Message, PubSub } from "@google-cloud/pubsub";
import {
  type ClientDuplexStream,
  credentials,
  type GrpcObject,
  type ServiceClientConstructor,
} from "@grpc/grpc-js";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { loadPubSubServices } from "../infra/local/pubsub/protos.js";

process.env.METADATA_SERVER_DETECTION = "none";
const ROOT = join(import.meta.dirname, "..");
const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;
const LATENCY_MESSAGES = 1000;
const THROUGHPUT_MESSAGES = 50_000;
const PUBLISH_WINDOW = 5_000;

function startEmulator(stateDir?: string): Promise<{ proc: ChildProcess; host: string; port: number }> {
  const args = ["bin/gangway.mjs", "pubsub-emulator", ...(stateDir ? ["--state-dir", stateDir] : [])];
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    proc.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (!out.includes("\n")) return;
      const host = (JSON.parse(out.split("\n")[0] ?? "") as { pubsubEmulatorHost: string })
        .pubsubEmulatorHost;
      resolve({ proc, host, port: Number(host.split(":")[1]) });
    });
    proc.on("exit", (code) => reject(new Error(`emulator exited with ${code}`)));
  });
}

async function stop(proc: ChildProcess): Promise<void> {
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  await exited;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

function summary(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: pct(s, 50), p99: pct(s, 99) };
}

// Baseline: a bare unary gRPC call (GetTopic) against the emulator process.
async function baselineRoundTrip(host: string, topic: string): Promise<{ p50: number; p99: number }> {
  const v1 = ((loadPubSubServices().grpcObject.google as GrpcObject).pubsub as GrpcObject).v1 as GrpcObject;
  const Publisher = v1.Publisher as ServiceClientConstructor;
  const client = new Publisher(host, credentials.createInsecure());
  const call = () =>
    new Promise<void>((resolve, reject) =>
      (client.GetTopic as (r: object, cb: (e: Error | null) => void) => void)({ topic }, (e) =>
        e ? reject(e) : resolve(),
      ),
    );
  for (let i = 0; i < 200; i++) await call();
  const times: number[] = [];
  for (let i = 0; i < LATENCY_MESSAGES; i++) {
    const t = performance.now();
    await call();
    times.push(performance.now() - t);
  }
  client.close();
  return summary(times);
}

async function streamingLatency(pubsub: PubSub, run: number): Promise<{ p50: number; p99: number }> {
  const [topic] = await pubsub.createTopic(`lat-topic-${run}`);
  topic.setPublishOptions({ batching: { maxMessages: 1, maxMilliseconds: 0 } });
  const [sub] = await topic.createSubscription(`lat-sub-${run}`);
  let waiting: ((m: Message) => void) | undefined;
  sub.on("message", (m: Message) => {
    m.ack();
    waiting?.(m);
  });
  const times: number[] = [];
  for (let i = 0; i < LATENCY_MESSAGES + 100; i++) {
    const t = performance.now();
    const got = new Promise<Message>((r) => {
      waiting = r;
    });
    await topic.publishMessage({ data: Buffer.alloc(1024, i) });
    await got;
    if (i >= 100) times.push(performance.now() - t);
  }
  await sub.close();
  return summary(times);
}

async function pushLatency(pubsub: PubSub, run: number): Promise<{ p50: number; p99: number }> {
  let waiting: (() => void) | undefined;
  const app = new Hono();
  app.post("/push", (c) => {
    waiting?.();
    return c.body(null, 204);
  });
  const server = await new Promise<{ port: number; close: () => void }>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) =>
      resolve({ port: info.port, close: () => s.close() }),
    );
  });
  const [topic] = await pubsub.createTopic(`push-topic-${run}`);
  topic.setPublishOptions({ batching: { maxMessages: 1, maxMilliseconds: 0 } });
  await topic.createSubscription(`push-sub-${run}`, {
    pushConfig: { pushEndpoint: `http://127.0.0.1:${server.port}/push` },
  });
  const times: number[] = [];
  for (let i = 0; i < LATENCY_MESSAGES + 100; i++) {
    const t = performance.now();
    const got = new Promise<void>((r) => {
      waiting = r;
    });
    await topic.publishMessage({ data: Buffer.alloc(1024, i) });
    await got;
    if (i >= 100) times.push(performance.now() - t);
  }
  server.close();
  return summary(times);
}

async function throughput(pubsub: PubSub, run: number, label: string): Promise<number> {
  const [topic] = await pubsub.createTopic(`tp-topic-${label}-${run}`);
  topic.setPublishOptions({ batching: { maxMessages: 1000, maxMilliseconds: 5, maxBytes: 4 * 1024 * 1024 } });
  const [sub] = await topic.createSubscription(`tp-sub-${label}-${run}`);
  sub.setOptions({ flowControl: { maxMessages: 5000, allowExcessMessages: false } });
  const seen = new Set<string>();
  const done = new Promise<void>((resolve) => {
    sub.on("message", (m: Message) => {
      m.ack();
      seen.add(m.id);
      if (seen.size === THROUGHPUT_MESSAGES) resolve();
    });
  });
  const payload = Buffer.alloc(1024, 7);
  const start = performance.now();
  // A sliding window of unanswered publishes: sustained load, the publisher's queue stays bounded.
  let inflight = 0;
  let slot: (() => void) | undefined;
  for (let i = 0; i < THROUGHPUT_MESSAGES; i++) {
    while (inflight >= PUBLISH_WINDOW) {
      await new Promise<void>((r) => {
        slot = r;
      });
    }
    inflight++;
    void topic.publishMessage({ data: payload }).then(() => {
      inflight--;
      slot?.();
    });
  }
  await done;
  const seconds = (performance.now() - start) / 1000;
  await sub.close();
  return THROUGHPUT_MESSAGES / seconds;
}

// The emulator's own capacity, without the official client's per-message work: generated gRPC
// stubs publishing 500-message batches and acking on the StreamingPull stream.
async function leanThroughput(pubsub: PubSub, host: string, run: number): Promise<number> {
  const [topic] = await pubsub.createTopic(`lean-topic-${run}`);
  const [sub] = await topic.createSubscription(`lean-sub-${run}`);
  const v1 = ((loadPubSubServices().grpcObject.google as GrpcObject).pubsub as GrpcObject).v1 as GrpcObject;
  const publisher = new (v1.Publisher as ServiceClientConstructor)(host, credentials.createInsecure());
  const subscriber = new (v1.Subscriber as ServiceClientConstructor)(host, credentials.createInsecure());
  const stream = (
    subscriber.StreamingPull as () => ClientDuplexStream<object, { receivedMessages: { ackId: string }[] }>
  )();
  let received = 0;
  const done = new Promise<void>((resolve) => {
    stream.on("data", (res: { receivedMessages: { ackId: string }[] }) => {
      received += res.receivedMessages.length;
      stream.write({ ackIds: res.receivedMessages.map((m) => m.ackId) });
      if (received >= THROUGHPUT_MESSAGES) resolve();
    });
  });
  stream.on("error", () => {});
  stream.write({ subscription: sub.name, streamAckDeadlineSeconds: 60, maxOutstandingMessages: 5000 });
  const batch = Array.from({ length: 500 }, () => ({ data: Buffer.alloc(1024, 3) }));
  const publish = () =>
    new Promise<void>((resolve, reject) =>
      (publisher.Publish as (r: object, cb: (e: Error | null) => void) => void)(
        { topic: topic.name, messages: batch },
        (e) => (e ? reject(e) : resolve()),
      ),
    );
  const start = performance.now();
  for (let sent = 0; sent < THROUGHPUT_MESSAGES; sent += 4000)
    await Promise.all(Array.from({ length: 8 }, publish));
  await done;
  const seconds = (performance.now() - start) / 1000;
  stream.cancel();
  publisher.close();
  subscriber.close();
  return THROUGHPUT_MESSAGES / seconds;
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const f = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
  return `median ${f(pct(s, 50))}  (min ${f(s[0] ?? Number.NaN)}, max ${f(s[s.length - 1] ?? Number.NaN)})`;
}

async function main(): Promise<void> {
  const loadBefore = loadavg()[0] ?? 0;
  const results: Record<string, number[]> = {};
  const add = (k: string, v: number) => {
    results[k] ??= [];
    results[k].push(v);
  };
  for (let run = 0; run < RUNS; run++) {
    const emu = await startEmulator();
    const pubsub = new PubSub({ projectId: "bench", apiEndpoint: emu.host, emulatorMode: true });
    const [t] = await pubsub.createTopic(`base-${run}`);
    const base = await baselineRoundTrip(emu.host, t.name);
    add("baseline gRPC round trip p50 (ms)", base.p50);
    add("baseline gRPC round trip p99 (ms)", base.p99);
    const sp = await streamingLatency(pubsub, run);
    add("streaming pull publish→delivery p50 (ms)", sp.p50);
    add("streaming pull publish→delivery p99 (ms)", sp.p99);
    const push = await pushLatency(pubsub, run);
    add("push publish→delivery p50 (ms)", push.p50);
    add("push publish→delivery p99 (ms)", push.p99);
    add("streaming pull 1 KiB msgs/s (in memory)", await throughput(pubsub, run, "mem"));
    add("emulator capacity, lean gRPC stubs, msgs/s", await leanThroughput(pubsub, emu.host, run));
    await pubsub.close();
    await stop(emu.proc);

    const dir = mkdtempSync(join(tmpdir(), "gangway-pubsub-bench-"));
    const durable = await startEmulator(dir);
    const pubsub2 = new PubSub({ projectId: "bench", apiEndpoint: durable.host, emulatorMode: true });
    add("streaming pull 1 KiB msgs/s (state dir, fsync)", await throughput(pubsub2, run, "wal"));
    await pubsub2.close();
    await stop(durable.proc);
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`run ${run + 1}/${RUNS} done\n`);
  }
  console.log(
    `pubsub emulator bench: ${RUNS} runs, ${LATENCY_MESSAGES} sequential 1 KiB messages per latency run,`,
  );
  console.log(
    `${THROUGHPUT_MESSAGES} x 1 KiB per throughput run; emulator in its own process (gangway pubsub-emulator)`,
  );
  console.log(
    `machine load average (1 min) before/after: ${loadBefore.toFixed(1)} / ${(loadavg()[0] ?? 0).toFixed(1)}`,
  );
  for (const [k, v] of Object.entries(results)) console.log(`  ${k.padEnd(48)} ${stats(v)}`);
}

await main();
