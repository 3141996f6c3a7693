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
  it("rejects a valid spec whose execution input is over 256 KiB, naming the size and the limit", async () => {
    const w = launchWorld();
    // 70 arguments of 4,000 characters: a valid spec of some 280 KB.
    const huge = { ...job, workload: { command: Array.from({ length: 70 }, () => "y".repeat(4000)) } };
    const res = await w.push(huge, "m-huge");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ action: "rejected", code: "ExecutionInputTooLarge" });
    const record = JSON.parse((await w.store.get("launch-rejections/m-huge.json")) ?? "{}");
    expect(record).toMatchObject({
      code: "ExecutionInputTooLarge",
      message: expect.stringMatching(/\d+ bytes.*262144/),
      messageId: "m-huge",
      issues: [{ path: "(root)", expected: expect.stringContaining("262144"), got: expect.any(String) }],
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

  it("takes an empty key for none: two messages, two jobs", async () => {
    const w = launchWorld();
    const a = (await (await pushWith(w, job, "m-a", "")).json()) as { action: string; jobId: string };
    const other = { ...job, workload: { command: ["python3", "eval.py"] } };
    const b = (await (await pushWith(w, other, "m-b", "")).json()) as { action: string; jobId: string };
    expect([a.action, b.action]).toEqual(["started", "started"]);
    expect(b.jobId).not.toBe(a.jobId);
  });
});
