import { ListExecutionsCommand } from "@aws-sdk/client-sfn";
import { PubSub } from "@google-cloud/pubsub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAUNCH_REQUESTS_TOPIC } from "../../core/host-event.js";
import { behaveJob, startTestStack } from "./harness.js";

// Launch requests on Pub/Sub: one execution per request however often it is delivered; a
// malformed request is acknowledged and recorded, never retried forever; pushes are authenticated.

let t: Awaited<ReturnType<typeof startTestStack>>;
let pubsub: PubSub;
beforeAll(async () => {
  t = await startTestStack("v4-8x1");
  pubsub = new PubSub({
    projectId: t.stack.projectId,
    apiEndpoint: t.stack.pubsubEmulatorHost,
    emulatorMode: true,
  });
});
afterAll(async () => {
  await pubsub?.close();
  await t?.close();
});

async function executionsNamed(prefix: string) {
  const out = await t.sfn.send(
    new ListExecutionsCommand({ stateMachineArn: t.stack.stateMachineArn, maxResults: 100 }),
  );
  return (out.executions ?? []).filter((e) => e.name?.startsWith(prefix));
}

describe("launch requests", () => {
  it("starts exactly one execution for a request delivered again and again", async () => {
    const spec = behaveJob("launched", { kind: "tpu", type: "v4-8", slices: 1 });
    for (let i = 0; i < 3; i++) {
      await pubsub
        .topic(LAUNCH_REQUESTS_TOPIC)
        .publishMessage({ json: spec, attributes: { idempotencyKey: "order-42" } });
    }
    let found: Awaited<ReturnType<typeof executionsNamed>> = [];
    for (let i = 0; i < 200 && found.length === 0; i++) {
      found = await executionsNamed("launched-");
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 1000));
    expect(await executionsNamed("launched-")).toHaveLength(1);
  });

  it("acknowledges and records a malformed request", async () => {
    const id = await pubsub
      .topic(LAUNCH_REQUESTS_TOPIC)
      .publishMessage({ json: { name: "broken", accelerator: { kind: "tpu", type: "v4-7" } } });
    let rejection: string | undefined;
    for (let i = 0; i < 200 && rejection === undefined; i++) {
      const res = await fetch(`${t.stack.api}/health`);
      expect(res.ok).toBe(true);
      rejection = await t.store.get(`launch-rejections/${encodeURIComponent(id)}.json`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(JSON.parse(rejection ?? "{}")).toMatchObject({
      code: "InvalidJobSpec",
      issues: expect.arrayContaining([
        expect.objectContaining({ path: "accelerator.type" }),
        expect.objectContaining({ path: "workload" }),
      ]),
    });
    expect(await executionsNamed("broken-")).toEqual([]);
  });

  it("acknowledges and records a request too large to run, naming the size and the limit", async () => {
    // 70 arguments of 4,000 characters: some 280 KB.
    const command = Array.from({ length: 70 }, () => "y".repeat(4000));
    const spec = { ...behaveJob("oversized", { kind: "cpu" }), workload: { command } };
    const id = await pubsub.topic(LAUNCH_REQUESTS_TOPIC).publishMessage({ json: spec });
    let rejection: string | undefined;
    for (let i = 0; i < 200 && rejection === undefined; i++) {
      rejection = await t.store.get(`launch-rejections/${encodeURIComponent(id)}.json`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(JSON.parse(rejection ?? "{}")).toMatchObject({
      code: "InvalidJobSpec",
      issues: [
        {
          path: "(root)",
          expected: expect.stringContaining("16384"),
          got: expect.stringMatching(/^\d+ bytes/),
        },
      ],
    });
    expect(await executionsNamed("oversized-")).toEqual([]);
  });

  it("refuses pushes without a valid token", async () => {
    const envelope = {
      message: {
        data: Buffer.from(JSON.stringify(behaveJob("sneaky", { kind: "cpu" }))).toString("base64"),
        messageId: "1",
      },
    };
    for (const authorization of [
      undefined,
      "Bearer not.a.jwt",
      "Bearer eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln",
    ]) {
      const res = await fetch(`${t.stack.api}/push/launch-requests`, {
        method: "POST",
        body: JSON.stringify(envelope),
        headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
      });
      expect(res.status).toBe(401);
    }
    for (const path of ["/push/host-events", "/push/preemption-notices"]) {
      expect(
        (
          await fetch(`${t.stack.api}${path}`, {
            method: "POST",
            body: JSON.stringify(envelope),
            headers: { "content-type": "application/json" },
          })
        ).status,
      ).toBe(401);
    }
    expect(await executionsNamed("sneaky-")).toEqual([]);
  });
});
