import { createPublicKey, verify } from "node:crypto";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, startHarness, waitFor } from "./helpers.js";

interface Pushed {
  path: string;
  authorization: string | undefined;
  body: {
    message: {
      data: string;
      attributes: Record<string, string>;
      messageId: string;
      publishTime: string;
      orderingKey?: string;
    };
    subscription: string;
  };
}

// A push receiver like gangway's ingest functions: a Hono app on 127.0.0.1. `/flaky` answers 500
// to the first two deliveries of each message, then 204.
function startReceiver() {
  const pushed: Pushed[] = [];
  const raw: Array<{ body: string; headers: Record<string, string> }> = [];
  const failuresLeft = new Map<string, number>();
  const app = new Hono();
  app.post("/raw", async (c) => {
    raw.push({ body: Buffer.from(await c.req.arrayBuffer()).toString(), headers: c.req.header() });
    return c.body(null, 204);
  });
  app.post("/:path", async (c) => {
    const body = (await c.req.json()) as Pushed["body"];
    pushed.push({ path: c.req.param("path"), authorization: c.req.header("authorization"), body });
    if (c.req.param("path") === "ordered") {
      const text = Buffer.from(body.message.data, "base64").toString();
      if (text === "k:3" && !failuresLeft.has("ordered-k3")) {
        failuresLeft.set("ordered-k3", 0);
        return c.text("fail once", 503);
      }
      return c.body(null, 200);
    }
    if (c.req.param("path") === "flaky") {
      const left = failuresLeft.get(body.message.messageId) ?? 2;
      failuresLeft.set(body.message.messageId, left - 1);
      if (left > 0) return c.text("try again", 500);
      return c.body(null, 204);
    }
    return c.text("ok", 200);
  });
  return new Promise<{ url: string; pushed: Pushed[]; raw: typeof raw; close: () => Promise<void> }>(
    (resolve) => {
      const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
        resolve({
          url: `http://127.0.0.1:${info.port}`,
          pushed,
          raw,
          close: () => new Promise<void>((done) => server.close(() => done())),
        });
      });
    },
  );
}

function verifyJwt(token: string, keys: Array<Record<string, unknown>>): Record<string, unknown> {
  const [h, p, s] = token.split(".");
  const header = JSON.parse(Buffer.from(h ?? "", "base64url").toString()) as { kid: string; alg: string };
  expect(header.alg).toBe("RS256");
  const jwk = keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error("no key with the token's kid");
  const key = createPublicKey({ key: jwk as never, format: "jwk" });
  const ok = verify("sha256", Buffer.from(`${h}.${p}`), key, Buffer.from(s ?? "", "base64url"));
  expect(ok).toBe(true);
  return JSON.parse(Buffer.from(p ?? "", "base64url").toString()) as Record<string, unknown>;
}

describe("pubsub emulator: push subscriptions", () => {
  let h: Harness;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  beforeAll(async () => {
    h = await startHarness();
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await h?.close();
    await receiver?.close();
  });

  it("POSTs Google's JSON wrapper with a verifiable OIDC token, retrying after 500 until acked", async () => {
    const [topic] = await h.pubsub.createTopic("push-topic");
    const [sub] = await topic.createSubscription("push-sub", {
      pushConfig: {
        pushEndpoint: `${receiver.url}/flaky`,
        oidcToken: {
          serviceAccountEmail: "pusher@gangway-test.iam.gserviceaccount.com",
          audience: "gangway-ingest",
        },
      },
    });
    const id = await topic.publishMessage({
      data: Buffer.from('{"event":"preempted"}'),
      attributes: { slice: "2" },
    });
    const mine = () => receiver.pushed.filter((p) => p.body.message.messageId === id);
    await waitFor(
      () => mine().length >= 3 && h.emulator.broker.queue(sub.name).size === 0,
      30_000,
      "acked push",
    );
    expect(mine()).toHaveLength(3);
    const first = mine()[0] as Pushed;
    expect(Buffer.from(first.body.message.data, "base64").toString()).toBe('{"event":"preempted"}');
    expect(first.body.message.attributes).toEqual({ slice: "2" });
    expect(first.body.subscription).toBe(sub.name);
    expect(Number.isNaN(Date.parse(first.body.message.publishTime))).toBe(false);

    const jwks = (await (await fetch(h.emulator.jwksUri ?? "")).json()) as {
      keys: Array<Record<string, unknown>>;
    };
    expect(jwks).toEqual(h.emulator.jwks());
    const token = first.authorization?.replace(/^Bearer /, "") ?? "";
    const claims = verifyJwt(token, jwks.keys);
    expect(claims.iss).toBe("https://accounts.google.com");
    expect(claims.aud).toBe("gangway-ingest");
    expect(claims.email).toBe("pusher@gangway-test.iam.gserviceaccount.com");
    expect(claims.email_verified).toBe(true);
    expect(Number(claims.exp)).toBeGreaterThan(Number(claims.iat));
  });

  it("pushes an ordering key in order, and after a failure again in order from the failed message", async () => {
    const [topic] = await h.pubsub.createTopic("ordered-push-topic");
    topic.setPublishOptions({ messageOrdering: true });
    const [sub] = await topic.createSubscription("ordered-push-sub", {
      enableMessageOrdering: true,
      pushConfig: { pushEndpoint: `${receiver.url}/ordered` },
    });
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        topic.publishMessage({ data: Buffer.from(`k:${i}`), orderingKey: "k" }),
      ),
    );
    const mine = () =>
      receiver.pushed
        .filter((p) => p.body.subscription === sub.name)
        .map((p) => Buffer.from(p.body.message.data, "base64").toString());
    await waitFor(() => h.emulator.broker.queue(sub.name).size === 0, 30_000, "every ordered push acked");
    expect(mine()).toEqual(["k:0", "k:1", "k:2", "k:3", "k:3", "k:4", "k:5", "k:6", "k:7"]);
  });

  it("pushes the bare payload with metadata headers when the subscription asks for no wrapper", async () => {
    const [topic] = await h.pubsub.createTopic("raw-push-topic");
    const [sub] = await topic.createSubscription("raw-push-sub", {
      pushConfig: { pushEndpoint: `${receiver.url}/raw`, noWrapper: { writeMetadata: true } },
    });
    const id = await topic.publishMessage({
      data: Buffer.from("plain bytes"),
      attributes: { kind: "host-event", "bad header\n": "x", authorization: "forged" },
    });
    await waitFor(() => h.emulator.broker.queue(sub.name).size === 0, 30_000, "the raw push");
    const got = receiver.raw.find((r) => r.headers["x-goog-pubsub-message-id"] === id);
    expect(got?.body).toBe("plain bytes");
    expect(got?.headers.kind).toBe("host-event");
    expect(got?.headers.authorization).toBeUndefined();
    expect(Number.isNaN(Date.parse(got?.headers["x-goog-pubsub-publish-time"] ?? ""))).toBe(false);
    expect(got?.headers["x-goog-pubsub-subscription-name"]).toBe(sub.name);
  });

  it("switches a pull subscription to push with ModifyPushConfig, without a token when none is asked", async () => {
    const [topic] = await h.pubsub.createTopic("switch-topic");
    const [sub] = await topic.createSubscription("switch-sub");
    await sub.modifyPushConfig({ pushEndpoint: `${receiver.url}/steady` });
    const ids = await Promise.all([1, 2, 3].map((i) => topic.publishMessage({ data: Buffer.from(`n${i}`) })));
    const mine = () => receiver.pushed.filter((p) => ids.includes(p.body.message.messageId));
    await waitFor(
      () => mine().length >= 3 && h.emulator.broker.queue(sub.name).size === 0,
      30_000,
      "three pushes",
    );
    expect(new Set(mine().map((p) => p.body.message.messageId))).toEqual(new Set(ids));
    expect(mine().every((p) => p.authorization === undefined && p.path === "steady")).toBe(true);
  });
});
