import type { AddressInfo } from "node:net";
import { type Message, PubSub } from "@google-cloud/pubsub";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  HOST_EVENTS_TOPIC,
  LAUNCH_REQUESTS_TOPIC,
  PREEMPTION_NOTICES_TOPIC,
} from "../../../core/host-event.js";
import { GOOGLE_ISSUERS, googleCertsKeySource } from "../../../functions/api/google-keys.js";
import { createOidcVerifier } from "../../../functions/api/oidc.js";
import { type DeployReport, deployPubSub } from "../../../infra/gcp/pubsub-deploy.js";
import { type PubSubEmulator, startPubSubEmulator } from "../../../infra/local/pubsub/emulator.js";
import { collect, waitFor } from "../pubsub/helpers.js";

// The official client on the embedded emulator; each test deploys into a project of its own, so
// the fixed gangway resource names never collide between tests.
const SA = "gangway-push@gangway-test.iam.gserviceaccount.com";
const TOPICS = [LAUNCH_REQUESTS_TOPIC, HOST_EVENTS_TOPIC, PREEMPTION_NOTICES_TOPIC];

interface Received {
  route: string;
  data: string;
  deliveryAttempt: number | undefined;
  refusal: string | undefined;
}

/**
 * An API stand-in on 127.0.0.1: checks each push's bearer token against the emulator's JWKS
 * (fetched over HTTP, as the API fetches Google's) for its own URL as audience, records the push,
 * and answers `status()` for an authentic one, 401 for the rest.
 */
async function startApi(jwksUri: string, status: () => number = () => 204) {
  const received: Received[] = [];
  const keys = googleCertsKeySource({ url: jwksUri });
  let audience = "";
  const app = new Hono();
  app.post("/push/:route", async (c) => {
    const refusal = await createOidcVerifier(keys, { issuers: GOOGLE_ISSUERS, audience, emails: [SA] })(
      c.req.header("authorization"),
      Date.now(),
    );
    const body = (await c.req.json()) as { message: { data: string }; deliveryAttempt?: number };
    received.push({
      route: c.req.param("route"),
      data: Buffer.from(body.message.data, "base64").toString(),
      deliveryAttempt: body.deliveryAttempt,
      refusal,
    });
    if (refusal) return c.text(refusal, 401);
    return c.body(null, status() as 204);
  });
  const { server, url } = await new Promise<{ server: ReturnType<typeof serve>; url: string }>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) =>
      resolve({ server: s, url: `http://127.0.0.1:${info.port}` }),
    );
  });
  audience = url;
  return {
    url,
    received,
    close: () =>
      new Promise<void>((done) => {
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
        server.close(() => done());
      }),
  };
}

const byName = (report: DeployReport) => new Map(report.resources.map((r) => [r.name, r]));

describe("deployPubSub on the embedded emulator", () => {
  let emulator: PubSubEmulator;
  const closers: Array<() => Promise<unknown>> = [];
  const client = (project: string) => {
    const pubsub = new PubSub({ projectId: project, apiEndpoint: emulator.host, emulatorMode: true });
    closers.push(() => pubsub.close());
    return pubsub;
  };

  beforeAll(async () => {
    process.env.METADATA_SERVER_DETECTION = "none";
    emulator = await startPubSubEmulator({ port: 0 });
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await emulator.close();
  });

  it("creates the layout with the asked-for settings, then finds nothing to change", async () => {
    const pubsub = client("deploy-first");
    const apiUrl = "https://gangway.example.test/";
    const first = await deployPubSub(pubsub, {
      apiUrl,
      pushServiceAccount: SA,
      maxDeliveryAttempts: 7,
      minBackoffSeconds: 0.5,
      maxBackoffSeconds: 30,
      ackDeadlineSeconds: 45,
      labels: { team: "ml" },
    });
    expect(first.project).toBe("deploy-first");
    expect(first.resources).toHaveLength(12);
    expect(first.resources.every((r) => r.action === "created")).toBe(true);
    expect(first.resources.map((r) => r.name).sort()).toEqual(
      TOPICS.flatMap((t) => [t, `${t}-dead-letter`, `${t}-push`, `${t}-dead-letter-sub`]).sort(),
    );

    const [notices] = await pubsub.subscription(`${PREEMPTION_NOTICES_TOPIC}-push`).getMetadata();
    expect(notices.topic).toBe(`projects/deploy-first/topics/${PREEMPTION_NOTICES_TOPIC}`);
    expect(notices.pushConfig?.pushEndpoint).toBe("https://gangway.example.test/push/preemption-notices");
    expect(notices.pushConfig?.oidcToken).toEqual({
      serviceAccountEmail: SA,
      audience: "https://gangway.example.test",
    });
    expect(notices.ackDeadlineSeconds).toBe(45);
    expect(notices.deadLetterPolicy).toEqual({
      deadLetterTopic: `projects/deploy-first/topics/${PREEMPTION_NOTICES_TOPIC}-dead-letter`,
      maxDeliveryAttempts: 7,
    });
    expect(String(notices.retryPolicy?.minimumBackoff?.seconds)).toBe("0");
    expect(notices.retryPolicy?.minimumBackoff?.nanos).toBe(500_000_000);
    expect(String(notices.retryPolicy?.maximumBackoff?.seconds)).toBe("30");
    expect(notices.labels).toEqual({ "managed-by": "gangway", team: "ml" });
    for (const [topic, route] of [
      [LAUNCH_REQUESTS_TOPIC, "launch-requests"],
      [HOST_EVENTS_TOPIC, "host-events"],
    ] as const) {
      const [m] = await pubsub.subscription(`${topic}-push`).getMetadata();
      expect(m.pushConfig?.pushEndpoint).toBe(`https://gangway.example.test/push/${route}`);
    }
    const [dead] = await pubsub.subscription(`${HOST_EVENTS_TOPIC}-dead-letter-sub`).getMetadata();
    expect(dead.topic).toBe(`projects/deploy-first/topics/${HOST_EVENTS_TOPIC}-dead-letter`);
    expect(dead.pushConfig?.pushEndpoint ?? "").toBe("");
    expect(String(dead.messageRetentionDuration?.seconds)).toBe(String(7 * 24 * 3600));
    const [topic] = await pubsub.topic(`${HOST_EVENTS_TOPIC}-dead-letter`).getMetadata();
    expect(topic.labels).toEqual({ "managed-by": "gangway", team: "ml" });

    expect(first.iamSteps[0]).toContain("gcloud projects describe deploy-first");
    expect(first.iamSteps).toContain(
      `gcloud iam service-accounts add-iam-policy-binding ${SA} --project=deploy-first --member="serviceAccount:service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com" --role=roles/iam.serviceAccountTokenCreator`,
    );
    expect(first.iamSteps.filter((s) => s.includes("--role=roles/pubsub.publisher"))).toHaveLength(3);
    expect(first.iamSteps.filter((s) => s.includes("--role=roles/pubsub.subscriber"))).toHaveLength(3);

    const again = await deployPubSub(pubsub, {
      apiUrl: "https://gangway.example.test",
      pushServiceAccount: SA,
      maxDeliveryAttempts: 7,
      minBackoffSeconds: 0.5,
      maxBackoffSeconds: 30,
      ackDeadlineSeconds: 45,
      labels: { team: "ml" },
    });
    expect(again.resources.map((r) => `${r.name} ${r.action}`)).toEqual(
      first.resources.map((r) => `${r.name} unchanged`),
    );
  });

  it("reports a dry run's changes without making them, then updates only what changed", async () => {
    const pubsub = client("deploy-update");
    await deployPubSub(pubsub, { apiUrl: "https://a.example.test", pushServiceAccount: SA });
    const changed = {
      apiUrl: "https://b.example.test",
      pushServiceAccount: SA,
      maxDeliveryAttempts: 10,
    };
    const dry = await deployPubSub(pubsub, { ...changed, dryRun: true });
    expect(dry.dryRun).toBe(true);
    const push = byName(dry).get(`${HOST_EVENTS_TOPIC}-push`);
    expect(push?.action).toBe("updated");
    expect(push?.changes).toEqual([
      'pushConfig.pushEndpoint: "https://a.example.test/push/host-events" → "https://b.example.test/push/host-events"',
      'pushConfig.oidcToken.audience: "https://a.example.test" → "https://b.example.test"',
      "deadLetterPolicy.maxDeliveryAttempts: 5 → 10",
    ]);
    const [still] = await pubsub.subscription(`${HOST_EVENTS_TOPIC}-push`).getMetadata();
    expect(still.pushConfig?.pushEndpoint).toBe("https://a.example.test/push/host-events");

    const real = await deployPubSub(pubsub, changed);
    expect(real.resources.map((r) => [r.name, r.action])).toEqual(
      dry.resources.map((r) => [r.name, r.action]),
    );
    expect(real.resources.filter((r) => r.action === "updated").map((r) => r.kind)).toEqual([
      "push-subscription",
      "push-subscription",
      "push-subscription",
    ]);
    const [now] = await pubsub.subscription(`${HOST_EVENTS_TOPIC}-push`).getMetadata();
    expect(now.pushConfig?.pushEndpoint).toBe("https://b.example.test/push/host-events");
    expect(now.deadLetterPolicy?.maxDeliveryAttempts).toBe(10);
    // Settings the update did not name are as they were.
    expect(String(now.retryPolicy?.maximumBackoff?.seconds)).toBe("60");
    expect(now.ackDeadlineSeconds).toBe(30);
  });

  it("moves pushes to a new API URL in place: messages published before still arrive, authenticated", async () => {
    const pubsub = client("deploy-move");
    // The old API refuses everything; many attempts allowed, so nothing dead-letters meanwhile.
    const oldApi = await startApi(emulator.jwksUri ?? "", () => 503);
    closers.push(oldApi.close);
    const settings = {
      pushServiceAccount: SA,
      maxDeliveryAttempts: 100,
      minBackoffSeconds: 0,
      maxBackoffSeconds: 1,
    };
    await deployPubSub(pubsub, { apiUrl: oldApi.url, ...settings });
    await pubsub.topic(HOST_EVENTS_TOPIC).publishMessage({ data: Buffer.from("before the move") });
    await waitFor(() => oldApi.received.length >= 1, 20_000, "a push to the old API");
    expect(oldApi.received[0]?.refusal).toBeUndefined();

    const newApi = await startApi(emulator.jwksUri ?? "");
    closers.push(newApi.close);
    const report = await deployPubSub(pubsub, { apiUrl: newApi.url, ...settings });
    expect(byName(report).get(`${HOST_EVENTS_TOPIC}-push`)?.action).toBe("updated");
    await pubsub.topic(HOST_EVENTS_TOPIC).publishMessage({ data: Buffer.from("after the move") });
    await pubsub.topic(LAUNCH_REQUESTS_TOPIC).publishMessage({ data: Buffer.from("a launch") });
    await waitFor(() => newApi.received.length >= 3, 20_000, "three pushes to the new API");
    expect(newApi.received.every((r) => r.refusal === undefined)).toBe(true);
    expect(newApi.received.map((r) => `${r.route}: ${r.data}`).sort()).toEqual([
      "host-events: after the move",
      "host-events: before the move",
      "launch-requests: a launch",
    ]);
  });

  it("dead-letters a message the API keeps failing, after maxDeliveryAttempts, where it stays readable", async () => {
    const pubsub = client("deploy-dead");
    const api = await startApi(emulator.jwksUri ?? "", () => 500);
    closers.push(api.close);
    await deployPubSub(pubsub, {
      apiUrl: api.url,
      pushServiceAccount: SA,
      maxDeliveryAttempts: 5,
      minBackoffSeconds: 0,
      maxBackoffSeconds: 0.2,
    });
    const dead = pubsub.subscription(`${PREEMPTION_NOTICES_TOPIC}-dead-letter-sub`);
    closers.push(() => dead.close());
    const got = collect(dead);
    await pubsub.topic(PREEMPTION_NOTICES_TOPIC).publishMessage({
      data: Buffer.from('{"slice":"pod-a"}'),
      attributes: { source: "test" },
    });
    await waitFor(() => got.messages.length >= 1, 30_000, "the dead-lettered notice");
    const m = got.messages[0] as Message;
    expect(m.data.toString()).toBe('{"slice":"pod-a"}');
    expect(m.attributes.source).toBe("test");
    expect(m.attributes.CloudPubSubDeadLetterSourceSubscription).toBe(`${PREEMPTION_NOTICES_TOPIC}-push`);
    expect(m.attributes.CloudPubSubDeadLetterSourceDeliveryCount).toBe("5");
    const attempts = api.received.filter((r) => r.route === "preemption-notices");
    expect(attempts.map((r) => r.deliveryAttempt)).toEqual([1, 2, 3, 4, 5]);
    expect(attempts.every((r) => r.refusal === undefined)).toBe(true);
  });
});
