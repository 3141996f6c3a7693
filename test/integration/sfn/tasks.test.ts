import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  StartExecutionCommand,
} from "@aws-sdk/client-sfn";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMachine, history, runToEnd, startTestSfn, type TestSfn, until, waitDone } from "./helpers.js";

let sfn: TestSfn;
let httpUrl: string;
let closeHttp: () => Promise<void>;
const tokens = new Map<string, string>();
let inFlight = 0;
let maxInFlight = 0;
let flakyCalls = 0;

beforeAll(async () => {
  // A function served over HTTP, to prove URL targets work like in-process apps.
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      const payload = JSON.parse(body || "null") as { n?: number };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ viaHttp: true, n: (payload?.n ?? 0) + 1 }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  httpUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  closeHttp = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });

  const app = new Hono();
  app.post("/", async (c) => {
    const body = (await c.req.json()) as { kind?: string; token?: string; key?: string; n?: number };
    if (body.kind === "fail")
      return c.json({ errorType: "HostUnreachable", errorMessage: "host 3 is gone" }, 500);
    if (body.kind === "token") {
      tokens.set(body.key as string, body.token as string);
      return c.json({ accepted: true });
    }
    return c.json({ doubled: (body.n ?? 0) * 2 });
  });
  sfn = await startTestSfn({
    lambdas: {
      Double: app,
      Remote: httpUrl,
      Flaky: () => {
        flakyCalls += 1;
        if (flakyCalls < 3) throw Object.assign(new Error("try again"), { name: "Transient" });
        return { ok: flakyCalls };
      },
      Slow: async (payload: unknown) => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 30));
        inFlight -= 1;
        return payload;
      },
      Never: () => new Promise(() => {}),
    },
  });
});
afterAll(async () => {
  await sfn.close();
  await closeHttp();
});

const invoke = (fn: string, extra: Record<string, unknown> = {}) => ({
  Type: "Task",
  Resource: "arn:aws:states:::lambda:invoke",
  Parameters: { FunctionName: fn, "Payload.$": "$" },
  ...extra,
});

describe("Lambda integration", () => {
  it("invokes an in-process Hono app with the Lambda response shape", async () => {
    const d = await runToEnd(
      sfn.client,
      { StartAt: "T", States: { T: invoke("Double", { End: true }) } },
      { n: 21 },
    );
    expect(d.status).toBe("SUCCEEDED");
    const out = JSON.parse(d.output as string);
    expect(out).toMatchObject({ Payload: { doubled: 42 }, StatusCode: 200, ExecutedVersion: "$LATEST" });
    expect(d.history.map((e) => e.type)).toEqual([
      "ExecutionStarted",
      "TaskStateEntered",
      "TaskScheduled",
      "TaskStarted",
      "TaskSucceeded",
      "TaskStateExited",
      "ExecutionSucceeded",
    ]);
    expect(d.history[2]?.taskScheduledEventDetails).toMatchObject({
      resourceType: "lambda",
      resource: "invoke",
    });
  });

  it("invokes a function by plain ARN and by URL target", async () => {
    const d = await runToEnd(
      sfn.client,
      {
        StartAt: "T",
        States: {
          T: { Type: "Task", Resource: "arn:aws:lambda:us-east-1:123456789012:function:Remote", End: true },
        },
      },
      { n: 1 },
    );
    expect(d.status).toBe("SUCCEEDED");
    expect(JSON.parse(d.output as string)).toEqual({ viaHttp: true, n: 2 });
    expect(d.history.map((e) => e.type)).toContain("LambdaFunctionSucceeded");
  });

  it("surfaces the function's error name for Catch, and Lambda.* names for missing functions", async () => {
    const d = await runToEnd(
      sfn.client,
      {
        StartAt: "T",
        States: {
          T: invoke("Double", {
            Parameters: { FunctionName: "Double", Payload: { kind: "fail" } },
            Catch: [{ ErrorEquals: ["HostUnreachable"], ResultPath: "$.err", Next: "Caught" }],
            End: true,
          }),
          Caught: { Type: "Pass", End: true },
        },
      },
      { keep: 1 },
    );
    expect(d.status).toBe("SUCCEEDED");
    const out = JSON.parse(d.output as string);
    expect(out.keep).toBe(1);
    expect(out.err.Error).toBe("HostUnreachable");
    expect(JSON.parse(out.err.Cause).errorMessage).toBe("host 3 is gone");
    const missing = await runToEnd(sfn.client, {
      StartAt: "T",
      States: { T: invoke("NoSuchFunction", { End: true }) },
    });
    expect(missing.status).toBe("FAILED");
    expect(missing.error).toBe("Lambda.ResourceNotFoundException");
  });

  it("retries with the retrier's counts and then succeeds", async () => {
    flakyCalls = 0;
    const d = await runToEnd(sfn.client, {
      StartAt: "T",
      States: {
        T: invoke("Flaky", {
          Retry: [
            {
              ErrorEquals: ["Transient"],
              IntervalSeconds: 1,
              BackoffRate: 1,
              MaxDelaySeconds: 1,
              MaxAttempts: 3,
              JitterStrategy: "FULL",
            },
          ],
          ResultSelector: { "value.$": "$.Payload" },
          End: true,
        }),
      },
    });
    expect(d.status).toBe("SUCCEEDED");
    expect(JSON.parse(d.output as string)).toEqual({ value: { ok: 3 } });
    expect(d.history.filter((e) => e.type === "TaskFailed")).toHaveLength(2);
    expect(d.history.filter((e) => e.type === "TaskScheduled")).toHaveLength(3);
  });

  it("times out with States.Timeout, caught by name", async () => {
    const d = await runToEnd(sfn.client, {
      StartAt: "T",
      States: {
        T: invoke("Never", {
          TimeoutSeconds: 1,
          Catch: [{ ErrorEquals: ["States.Timeout"], Next: "Late" }],
          End: true,
        }),
        Late: { Type: "Pass", End: true },
      },
    });
    expect(d.status).toBe("SUCCEEDED");
    expect(JSON.parse(d.output as string).Error).toBe("States.Timeout");
    expect(d.history.map((e) => e.type)).toContain("TaskTimedOut");
  });

  it("runs inline Map iterations at most 40 at once", async () => {
    maxInFlight = 0;
    const d = await runToEnd(
      sfn.client,
      {
        StartAt: "M",
        States: {
          M: {
            Type: "Map",
            ItemsPath: "$.items",
            ItemProcessor: {
              StartAt: "T",
              States: {
                T: {
                  Type: "Task",
                  Resource: "arn:aws:lambda:us-east-1:123456789012:function:Slow",
                  End: true,
                },
              },
            },
            End: true,
          },
        },
      },
      { items: Array.from({ length: 120 }, (_, i) => i) },
    );
    expect(d.status).toBe("SUCCEEDED");
    expect(JSON.parse(d.output as string)).toEqual(Array.from({ length: 120 }, (_, i) => i));
    expect(maxInFlight).toBeLessThanOrEqual(40);
    expect(maxInFlight).toBeGreaterThan(1);
  });
});

describe("task tokens", () => {
  const waitMachine = (extra: Record<string, unknown> = {}) => ({
    StartAt: "Wait",
    States: {
      Wait: {
        Type: "Task",
        Resource: "arn:aws:states:::lambda:invoke.waitForTaskToken",
        Parameters: {
          FunctionName: "Double",
          Payload: { kind: "token", "token.$": "$$.Task.Token", "key.$": "$.key" },
        },
        ...extra,
        End: true,
      },
    },
  });
  const start = async (definition: unknown, key: string) => {
    const arn = await createMachine(sfn.client, definition);
    const s = await sfn.client.send(
      new StartExecutionCommand({ stateMachineArn: arn, input: JSON.stringify({ key }) }),
    );
    const token = await until(() => tokens.get(key));
    return { executionArn: s.executionArn as string, token };
  };
  const apiError = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      return (e as Error).name;
    }
    return "no error";
  };

  it("completes with SendTaskSuccess; the token is then gone", async () => {
    const { executionArn, token } = await start(waitMachine(), "ok");
    await sfn.client.send(new SendTaskHeartbeatCommand({ taskToken: token }));
    await sfn.client.send(new SendTaskSuccessCommand({ taskToken: token, output: '{"done":true}' }));
    const d = await waitDone(sfn.client, executionArn);
    expect(d.status).toBe("SUCCEEDED");
    expect(JSON.parse(d.output as string)).toEqual({ done: true });
    const types = (await history(sfn.client, executionArn)).map((e) => e.type);
    expect(types).toEqual([
      "ExecutionStarted",
      "TaskStateEntered",
      "TaskScheduled",
      "TaskStarted",
      "TaskSubmitted",
      "TaskSucceeded",
      "TaskStateExited",
      "ExecutionSucceeded",
    ]);
    expect(
      await apiError(sfn.client.send(new SendTaskSuccessCommand({ taskToken: token, output: "{}" }))),
    ).toBe("TaskDoesNotExist");
  });

  it("fails with SendTaskFailure's error and cause", async () => {
    const { executionArn, token } = await start(waitMachine(), "fail");
    expect(
      await apiError(sfn.client.send(new SendTaskSuccessCommand({ taskToken: token, output: "{bad" }))),
    ).toBe("InvalidOutput");
    await sfn.client.send(
      new SendTaskFailureCommand({ taskToken: token, error: "Preempted", cause: "slice 2" }),
    );
    const d = await waitDone(sfn.client, executionArn);
    expect(d).toMatchObject({ status: "FAILED", error: "Preempted", cause: "slice 2" });
  });

  it("answers InvalidToken for a malformed token and TaskTimedOut after a heartbeat timeout", async () => {
    expect(
      await apiError(sfn.client.send(new SendTaskSuccessCommand({ taskToken: "garbage", output: "{}" }))),
    ).toBe("InvalidToken");
    const { executionArn, token } = await start(waitMachine({ HeartbeatSeconds: 1 }), "hb");
    const d = await waitDone(sfn.client, executionArn);
    expect(d).toMatchObject({ status: "FAILED", error: "States.HeartbeatTimeout" });
    expect(await apiError(sfn.client.send(new SendTaskHeartbeatCommand({ taskToken: token })))).toBe(
      "TaskTimedOut",
    );
    expect(
      await apiError(sfn.client.send(new SendTaskSuccessCommand({ taskToken: token, output: "{}" }))),
    ).toBe("TaskTimedOut");
  });
});
