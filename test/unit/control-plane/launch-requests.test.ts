import { describe, expect, it } from "vitest";
import { jobIdFor } from "../../../functions/api/job-id.js";
import { createLaunchRequestsApp } from "../../../functions/api/launch-requests.js";
import { createMemoryResultsStore } from "../../../functions/clients/results-store.js";
import { fakeExecutions, SM, sfnError } from "./api-fakes.js";

// A launch request Step Functions can never start is acknowledged (200, so Pub/Sub does not
// redeliver it and pause the subscription) and recorded under launch-rejections/.

const job = {
  name: "train",
  accelerator: { kind: "tpu", type: "v4-8" },
  workload: { command: ["python3", "train.py"] },
};

function launchWorld(options: { refuseStart?: Error } = {}) {
  const sfn = fakeExecutions(options);
  const store = createMemoryResultsStore();
  const app = createLaunchRequestsApp({ executions: sfn.api, store, stateMachineArn: SM });
  const push = (spec: unknown, messageId: string) =>
    app.request("/push/launch-requests", {
      method: "POST",
      body: JSON.stringify({
        message: { data: Buffer.from(JSON.stringify(spec)).toString("base64"), messageId },
      }),
      headers: { "content-type": "application/json" },
    });
  return { app, sfn, store, push };
}

describe("launch requests Step Functions refuses", () => {
  it("rejects a spec too large to travel in every state, naming the size and the limit", async () => {
    const w = launchWorld();
    // 70 arguments of 4,000 characters: some 280 KB.
    const huge = { ...job, workload: { command: Array.from({ length: 70 }, () => "y".repeat(4000)) } };
    const res = await w.push(huge, "m-huge");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ action: "rejected", code: "InvalidJobSpec" });
    const record = JSON.parse((await w.store.get("launch-rejections/m-huge.json")) ?? "{}");
    expect(record).toMatchObject({
      code: "InvalidJobSpec",
      messageId: "m-huge",
      issues: [{ path: "(root)", message: expect.stringContaining("at most 16384 bytes") }],
    });
    expect(w.sfn.all.size).toBe(0);
  });

  it.each([
    ["ValidationException", "Value at 'input' failed to satisfy constraint"],
    ["InvalidExecutionInput", "Invalid State Machine Execution Input"],
  ])("rejects a request StartExecution answers %s", async (name, message) => {
    const w = launchWorld({ refuseStart: sfnError(name, message) });
    const res = await w.push(job, "m-refused");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ action: "rejected", code: name });
    expect(JSON.parse((await w.store.get("launch-rejections/m-refused.json")) ?? "{}")).toMatchObject({
      code: name,
      message: expect.stringContaining(message),
      issues: [{ path: "(root)" }],
    });
  });

  it("leaves a blip to Pub/Sub's redelivery: not acknowledged, nothing recorded", async () => {
    const w = launchWorld({ refuseStart: sfnError("ThrottlingException", "Rate exceeded") });
    const res = await w.push(job, "m-blip");
    expect(res.status).toBe(429);
    expect(await res.json()).toMatchObject({ code: "ThrottlingException", issues: [] });
    expect(await w.store.list("launch-rejections/")).toEqual([]);
  });
});

describe("malformed launch requests", () => {
  it("rejects data that is not JSON naming what was expected and got", async () => {
    const w = launchWorld();
    const res = await w.app.request("/push/launch-requests", {
      method: "POST",
      body: JSON.stringify({
        message: { data: Buffer.from("{nope").toString("base64"), messageId: "m-bad" },
      }),
      headers: { "content-type": "application/json" },
    });
    expect(await res.json()).toMatchObject({
      action: "rejected",
      code: "InvalidJson",
      issues: [
        {
          path: "(root)",
          expected: "a JSON document",
          got: expect.stringContaining("data that does not parse"),
          message: expect.stringMatching(/^\(root\): expected a JSON document, got data that does not parse/),
        },
      ],
    });
    const none = await w.app.request("/push/launch-requests", {
      method: "POST",
      body: JSON.stringify({ message: { messageId: "m-none" } }),
      headers: { "content-type": "application/json" },
    });
    expect(await none.json()).toMatchObject({
      code: "InvalidJson",
      issues: [{ path: "(root)", expected: "a JSON document", got: "a message without data" }],
    });
  });

  it("rejects an invalid spec with every issue's path, expected and got, and records them", async () => {
    const w = launchWorld();
    const res = await w.push({ ...job, accelerator: { kind: "tpu", type: "v4-7" }, extra: 1 }, "m-spec");
    const issues = [
      { path: "accelerator.type", expected: expect.any(String), got: 'string "v4-7"' },
      { path: "extra", expected: expect.stringContaining("known fields"), got: 'unknown field "extra"' },
    ];
    expect(await res.json()).toMatchObject({ action: "rejected", code: "InvalidJobSpec", issues });
    expect(JSON.parse((await w.store.get("launch-rejections/m-spec.json")) ?? "{}")).toMatchObject({
      issues,
    });
    expect(w.sfn.all.size).toBe(0);
  });
});

describe("routes the launch-request app does not have", () => {
  it("answers a known path under another method 405 and an unknown one 404, as {code, message, issues}", async () => {
    const w = launchWorld();
    const wrong = await w.app.request("/push/launch-requests");
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("POST");
    expect(await wrong.json()).toEqual({
      code: "MethodNotAllowed",
      message: expect.stringContaining("GET /push/launch-requests"),
      issues: [],
    });
    const unknown = await w.app.request("/push/launch-requests/x", { method: "POST" });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({
      code: "NotFound",
      message: "no route POST /push/launch-requests/x",
      issues: [],
    });
  });
});

describe("a launch request's idempotency key", () => {
  const pushWith = (w: ReturnType<typeof launchWorld>, spec: unknown, messageId: string, key: string) =>
    w.app.request("/push/launch-requests", {
      method: "POST",
      body: JSON.stringify({
        message: {
          data: Buffer.from(JSON.stringify(spec)).toString("base64"),
          messageId,
          attributes: { idempotencyKey: key },
        },
      }),
      headers: { "content-type": "application/json" },
    });

  it("names the job as the API and the SFN client do", async () => {
    const w = launchWorld();
    const res = await pushWith(w, job, "m-1", "nightly-2030-01-01");
    expect(await res.json()).toMatchObject({
      action: "started",
      jobId: jobIdFor("train", "nightly-2030-01-01"),
    });
  });

  it("starts one job for two concurrent messages with one key and different specs; the other is rejected", async () => {
    const w = launchWorld();
    const start = w.sfn.api.start;
    w.sfn.api.start = async (r) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return start(r);
    };
    const answers = (await Promise.all(
      [
        pushWith(w, { ...job, name: "first" }, "m-1", "order-7"),
        pushWith(w, { ...job, name: "second" }, "m-2", "order-7"),
      ].map(async (r) => (await r).json()),
    )) as Array<{ action: string; jobId?: string; code?: string; issues?: unknown[] }>;
    expect(answers.map((a) => a.action).sort()).toEqual(["rejected", "started"]);
    expect(w.sfn.all.size).toBe(1);
    const started = answers.find((a) => a.action === "started");
    expect(answers.find((a) => a.action === "rejected")).toMatchObject({
      code: "IdempotencyConflict",
      issues: [
        {
          path: "attributes.idempotencyKey",
          expected: expect.stringContaining(started?.jobId ?? "?"),
          got: expect.stringContaining('"order-7"'),
        },
      ],
    });
  });

  it("answers a redelivery as a duplicate, and starts it once a failed start is retried", async () => {
    const w = launchWorld();
    const start = w.sfn.api.start;
    w.sfn.api.start = async () => {
      throw sfnError("ServiceUnavailable", "try later");
    };
    expect((await pushWith(w, job, "m-1", "order-8")).status).toBe(503);
    w.sfn.api.start = start;
    expect(await (await pushWith(w, { ...job, name: "x" }, "m-2", "order-8")).json()).toMatchObject({
      action: "rejected",
      code: "IdempotencyConflict",
    });
    expect(await (await pushWith(w, job, "m-1", "order-8")).json()).toMatchObject({ action: "started" });
    expect(await (await pushWith(w, job, "m-1", "order-8")).json()).toMatchObject({ action: "duplicate" });
    expect(w.sfn.all.size).toBe(1);
  });

  it("takes an empty key for none: two messages, two jobs", async () => {
    const w = launchWorld();
    const a = (await (await pushWith(w, job, "m-a", "")).json()) as { action: string; jobId: string };
    const other = { ...job, workload: { command: ["python3", "eval.py"] } };
    const b = (await (await pushWith(w, other, "m-b", "")).json()) as { action: string; jobId: string };
    expect([a.action, b.action]).toEqual(["started", "started"]);
    expect(b.jobId).not.toBe(a.jobId);
  });
});
