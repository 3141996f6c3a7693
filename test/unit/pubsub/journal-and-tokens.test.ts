import { createPublicKey, verify } from "node:crypto";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { PubSubBroker } from "../../../infra/local/pubsub/broker.js";
import { FileJournal, readJournal, writeJournalFile } from "../../../infra/local/pubsub/journal.js";
import { PushTokenSigner } from "../../../infra/local/pubsub/oidc.js";
import type { Consumer, Lease } from "../../../infra/local/pubsub/subscription-queue.js";

const silent = { info: () => {}, warn: () => {} };
const clock = { now: () => 1_700_000_000_000 };
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "gangway-pubsub-unit-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function replayInto(dir: string): PubSubBroker {
  const broker = new PubSubBroker(clock, undefined, silent);
  for (const r of readJournal(dir)) broker.replay(r);
  return broker;
}

function takeAll(broker: PubSubBroker, sub: string): Lease[] {
  const got: Lease[] = [];
  const c: Consumer = {
    ackDeadlineSeconds: 10,
    outstanding: 0,
    outstandingBytes: 0,
    room: () => ({ messages: 1000, bytes: Number.POSITIVE_INFINITY }),
    deliver: (l) => got.push(...l),
  };
  const q = broker.queue(sub);
  q.addConsumer(c);
  q.pump();
  q.removeConsumer(c);
  return got;
}

describe("write-ahead journal", () => {
  it("replays topics, subscriptions, unacked messages; acked ones stay gone; ids keep counting", async () => {
    const dir = tempDir();
    const journal = await FileJournal.open(dir);
    const broker = new PubSubBroker(clock, journal, silent);
    await broker.createTopic({ name: "projects/p/topics/events" });
    await broker.createSubscription({
      name: "projects/p/subscriptions/ingest",
      topic: "projects/p/topics/events",
    });
    const ids = await broker.publish("projects/p/topics/events", [
      { data: Buffer.from("one"), attributes: { k: "1" } },
      { data: Buffer.from("two"), attributes: {}, orderingKey: "slice-0" },
      { data: Buffer.from("three"), attributes: {} },
    ]);
    const leases = takeAll(broker, "projects/p/subscriptions/ingest");
    await broker.acknowledge("projects/p/subscriptions/ingest", [leases[0]?.ackId ?? ""]);
    await journal.close();

    const restarted = replayInto(dir);
    expect(restarted.getTopic("projects/p/topics/events").name).toBe("projects/p/topics/events");
    const again = takeAll(restarted, "projects/p/subscriptions/ingest");
    expect(again.map((l) => String(l.entry.msg.seq))).toEqual(ids.slice(1));
    expect(again[0]?.entry.msg.orderingKey).toBe("slice-0");
    expect(again[1]?.entry.msg.data.toString()).toBe("three");
    const [next] = await restarted.publish("projects/p/topics/events", [
      { data: Buffer.from("4"), attributes: {} },
    ]);
    expect(Number(next)).toBeGreaterThan(Number(ids[2]));
  });

  it("skips a torn last line (a crash in the middle of a write)", async () => {
    const dir = tempDir();
    const journal = await FileJournal.open(dir);
    const broker = new PubSubBroker(clock, journal, silent);
    await broker.createTopic({ name: "projects/p/topics/events" });
    await journal.close();
    appendFileSync(join(dir, "pubsub.log"), '{"t":"topic","topic":{"name":"projects/p/top');
    const warnings: string[] = [];
    expect(readJournal(dir, (w) => warnings.push(w))).toHaveLength(1);
    expect(warnings[0]).toMatch(/torn tail/);
  });

  it("compacts to what is alive: a snapshot replays to the same state", async () => {
    const dir = tempDir();
    const journal = await FileJournal.open(dir);
    const broker = new PubSubBroker(clock, journal, silent);
    await broker.createTopic({ name: "projects/p/topics/events" });
    await broker.createSubscription({
      name: "projects/p/subscriptions/sub-a",
      topic: "projects/p/topics/events",
    });
    await broker.createSubscription({
      name: "projects/p/subscriptions/sub-b",
      topic: "projects/p/topics/events",
    });
    for (let i = 0; i < 20; i++)
      await broker.publish("projects/p/topics/events", [{ data: Buffer.from(`${i}`), attributes: {} }]);
    const leases = takeAll(broker, "projects/p/subscriptions/sub-a");
    await broker.acknowledge(
      "projects/p/subscriptions/sub-a",
      leases.slice(0, 15).map((l) => l.ackId),
    );
    await journal.close();
    const before = readFileSync(join(dir, "pubsub.log"), "utf8").split("\n").length;
    writeJournalFile(dir, replayInto(dir).snapshot());
    const after = readFileSync(join(dir, "pubsub.log"), "utf8").split("\n").length;
    expect(after).toBeLessThan(before);
    const compacted = replayInto(dir);
    expect(compacted.queue("projects/p/subscriptions/sub-a").size).toBe(5);
    expect(compacted.queue("projects/p/subscriptions/sub-b").size).toBe(20);
  });
});

describe("write-ahead journal compaction while running", () => {
  it("rewrites the log to the live messages once enough records piled up, and keeps appending", async () => {
    const dir = tempDir();
    const journal = await FileJournal.open(dir);
    const broker = new PubSubBroker(clock, journal, silent, 100);
    await broker.createTopic({ name: "projects/p/topics/events" });
    await broker.createSubscription({
      name: "projects/p/subscriptions/sub-a",
      topic: "projects/p/topics/events",
    });
    for (let i = 0; i < 150; i++)
      await broker.publish("projects/p/topics/events", [{ data: Buffer.from(`${i}`), attributes: {} }]);
    const leases = takeAll(broker, "projects/p/subscriptions/sub-a");
    await broker.acknowledge(
      "projects/p/subscriptions/sub-a",
      leases.slice(0, 148).map((l) => l.ackId),
    );
    // This publish finds 152+ records against 2 live messages: it asks for a rewrite.
    await broker.publish("projects/p/topics/events", [{ data: Buffer.from("last"), attributes: {} }]);
    await broker.publish("projects/p/topics/events", [{ data: Buffer.from("after"), attributes: {} }]);
    await journal.close();
    const lines = readFileSync(join(dir, "pubsub.log"), "utf8").trim().split("\n");
    expect(lines.length).toBeLessThan(20);
    const replayed = replayInto(dir);
    const data = takeAll(replayed, "projects/p/subscriptions/sub-a").map((l) => l.entry.msg.data.toString());
    expect(data).toEqual(["148", "149", "last", "after"]);
  });
});

describe("push tokens", () => {
  it("signs RS256 JWTs that verify against the published JWKS", () => {
    const signer = new PushTokenSigner(() => 1_700_000_000_000);
    const token = signer.token("pusher@p.iam.gserviceaccount.com", "https://ingest.example/push");
    const [h, p, s] = token.split(".");
    const header = JSON.parse(Buffer.from(h ?? "", "base64url").toString());
    const claims = JSON.parse(Buffer.from(p ?? "", "base64url").toString());
    const jwk = signer.jwks().keys.find((k) => k.kid === header.kid);
    expect(jwk).toBeDefined();
    const key = createPublicKey({ key: jwk as never, format: "jwk" });
    expect(verify("sha256", Buffer.from(`${h}.${p}`), key, Buffer.from(s ?? "", "base64url"))).toBe(true);
    expect(verify("sha256", Buffer.from(`${h}.${p}x`), key, Buffer.from(s ?? "", "base64url"))).toBe(false);
    expect(claims).toMatchObject({
      iss: "https://accounts.google.com",
      aud: "https://ingest.example/push",
      email: "pusher@p.iam.gserviceaccount.com",
      email_verified: true,
      iat: 1_700_000_000,
      exp: 1_700_003_600,
    });
    expect(signer.token("pusher@p.iam.gserviceaccount.com", "https://ingest.example/push")).toBe(token);
  });
});
