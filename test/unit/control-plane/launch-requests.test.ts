import { describe, expect, it } from "vitest";
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
  return { sfn, store, push };
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
