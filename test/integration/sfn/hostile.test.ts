import { request } from "node:http";
import { StartExecutionCommand } from "@aws-sdk/client-sfn";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMachine, runToEnd, startTestSfn, type TestSfn, waitDone } from "./helpers.js";

let sfn: TestSfn;
beforeAll(async () => {
  sfn = await startTestSfn();
});
afterAll(async () => {
  await sfn.close();
});

/** Send raw bytes to the server; answers status and parsed body. */
function raw(body: string | Buffer, headers: Record<string, string> = {}, method = "POST") {
  const url = new URL(sfn.server.url);
  return new Promise<{ status: number; body: { __type?: string; message?: string } }>((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: "/",
        headers: { "content-type": "application/x-amz-json-1.0", ...headers },
      },
      (res) => {
        let text = "";
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const target = (op: string) => ({ "x-amz-target": `AWSStepFunctions.${op}` });

describe("hostile and malformed requests", () => {
  it("answers AWS-shaped errors, never crashes", async () => {
    const bad = await raw("{not json", target("ListStateMachines"));
    expect(bad).toMatchObject({ status: 400, body: { __type: "SerializationException" } });
    expect((await raw("[1,2]", target("ListStateMachines"))).body.__type).toBe("SerializationException");
    expect((await raw("{}", target("TeleportEverything"))).body.__type).toBe("UnknownOperationException");
    expect((await raw("{}", {})).body.__type).toBe("UnknownOperationException");
    const missing = await raw("{}", target("StartExecution"));
    expect(missing.status).toBe(400);
    expect(missing.body.__type).toBe("MissingRequiredParameter");
    expect(missing.body.message).toContain("stateMachineArn");
    const wrongType = await raw(JSON.stringify({ stateMachineArn: 42 }), target("StartExecution"));
    expect(wrongType.body.__type).toBe("ValidationException");
    expect(wrongType.body.message).toContain("stateMachineArn: expected string, got integer 42");
    const huge = await raw(Buffer.alloc(3 * 1024 * 1024, 0x20), target("ListStateMachines"));
    expect(huge.status).toBe(413);
    expect((await raw("{}", target("ListStateMachines"))).status).toBe(200);
  });

  it("refuses hostile definitions: deep nesting, invalid paths, intrinsic garbage", async () => {
    let deep: Record<string, unknown> = { StartAt: "P", States: { P: { Type: "Pass", End: true } } };
    for (let i = 0; i < 200; i++)
      deep = { StartAt: "X", States: { X: { Type: "Parallel", Branches: [deep], End: true } } };
    const create = (definition: unknown) =>
      raw(
        JSON.stringify({
          name: `h${Math.random().toString(36).slice(2)}`,
          roleArn: "arn:aws:iam::123456789012:role/r",
          definition: JSON.stringify(definition),
        }),
        target("CreateStateMachine"),
      );
    const d = await create(deep);
    expect(d.body.__type).toBe("InvalidDefinition");
    expect(d.body.message).toContain("nesting");
    const p = await create({
      StartAt: "A",
      States: { A: { Type: "Pass", Parameters: { "x.$": "$.a[?(@.b ==" }, End: true } },
    });
    expect(p.body.__type).toBe("InvalidDefinition");
    const i = await create({
      StartAt: "A",
      States: { A: { Type: "Pass", Parameters: { "x.$": "States.Nope(1)" }, End: true } },
    });
    expect(i.body.__type).toBe("InvalidDefinition");
  });

  it("a huge Map or a runaway loop does not stall other executions", async () => {
    const loopArn = await createMachine(sfn.client, {
      StartAt: "A",
      States: { A: { Type: "Pass", Next: "B" }, B: { Type: "Pass", Next: "A" } },
    });
    const mapArn = await createMachine(sfn.client, {
      StartAt: "M",
      States: {
        M: {
          Type: "Map",
          ItemsPath: "$.items",
          MaxConcurrency: 0,
          ItemProcessor: { StartAt: "P", States: { P: { Type: "Pass", End: true } } },
          End: true,
        },
      },
    });
    const loop = await sfn.client.send(new StartExecutionCommand({ stateMachineArn: loopArn }));
    const map = await sfn.client.send(
      new StartExecutionCommand({
        stateMachineArn: mapArn,
        input: JSON.stringify({ items: Array.from({ length: 7000 }, (_, i) => i) }),
      }),
    );
    // Meanwhile a small execution runs to its end.
    const small = await runToEnd(sfn.client, {
      StartAt: "A",
      States: { A: { Type: "Pass", Result: 1, End: true } },
    });
    expect(small.status).toBe("SUCCEEDED");
    expect((await waitDone(sfn.client, loop.executionArn as string)).status).toBe("FAILED");
    // 7,000 items make more than 25,000 events: the Map's execution fails the way AWS's would.
    const m = await waitDone(sfn.client, map.executionArn as string);
    expect(m.status).toBe("FAILED");
  });

  it("refuses absurdly deep JSON at the edge instead of overflowing later", async () => {
    const arn = await createMachine(sfn.client, {
      StartAt: "W",
      States: { W: { Type: "Wait", Seconds: 3600, End: true } },
    });
    const deep = `${"[".repeat(50_000)}${"]".repeat(50_000)}`;
    const r = await raw(JSON.stringify({ stateMachineArn: arn, input: deep }), target("StartExecution"));
    expect(r.body.__type).toBe("InvalidExecutionInput");
    expect(r.body.message).toContain("nested deeper");
    // The engine still serves.
    const ok = await raw(JSON.stringify({ stateMachineArn: arn, input: "[[1]]" }), target("StartExecution"));
    expect(ok.status).toBe(200);
  });

  it("turns runtime faults into States.Runtime failures of the execution only", async () => {
    const d = await runToEnd(
      sfn.client,
      { StartAt: "A", States: { A: { Type: "Pass", InputPath: "$.missing", End: true } } },
      { present: 1 },
    );
    expect(d.status).toBe("FAILED");
    expect(d.error).toBe("States.Runtime");
    expect(d.cause).toContain("Invalid path '$.missing'");
  });
});
