import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DescribeExecutionCommand,
  SendTaskSuccessCommand,
  type SFNClient,
  StartExecutionCommand,
} from "@aws-sdk/client-sfn";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMachine, history, sdkClient, until, waitDone } from "./helpers.js";

// The engine runs as `gangway sfn-local` in its own process and is killed with SIGKILL mid-run.
const BIN = join(import.meta.dirname, "../../../bin/gangway.mjs");

let stateDir: string;
let fnServer: Server;
let fnUrl: string;
const calls = new Map<string, number>();
const tokens = new Map<string, string>();

interface Engine {
  proc: ChildProcess;
  client: SFNClient;
}
const engines: Engine[] = [];

async function startEngine(): Promise<Engine> {
  const proc = spawn(
    process.execPath,
    [BIN, "sfn-local", "--state-dir", stateDir, "--lambda", `Fn=${fnUrl}`],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const endpoint = await new Promise<string>((resolve, reject) => {
    let out = "";
    proc.stdout?.on("data", (c) => {
      out += c;
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve((JSON.parse(line) as { ready: boolean; sfnEndpoint: string }).sfnEndpoint);
    });
    proc.once("exit", (code) => reject(new Error(`sfn-local exited with ${code}`)));
  });
  const e = { proc, client: sdkClient(endpoint) };
  engines.push(e);
  return e;
}

function kill9(e: Engine): Promise<void> {
  e.client.destroy();
  return new Promise((r) => {
    e.proc.once("exit", () => r());
    e.proc.kill("SIGKILL");
  });
}

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "gangway-sfn-dur-"));
  fnServer = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      const p = JSON.parse(body) as { key: string; token?: string; fail?: boolean };
      calls.set(p.key, (calls.get(p.key) ?? 0) + 1);
      if (p.token) tokens.set(p.key, p.token);
      if (p.fail) {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ errorType: "Boom", errorMessage: "always" }));
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ key: p.key }));
    });
  });
  await new Promise<void>((r) => fnServer.listen(0, "127.0.0.1", r));
  fnUrl = `http://127.0.0.1:${(fnServer.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  for (const e of engines) {
    e.client.destroy();
    if (e.proc.exitCode === null && e.proc.signalCode === null) e.proc.kill("SIGKILL");
  }
  await new Promise<void>((r) => {
    fnServer.closeAllConnections();
    fnServer.close(() => r());
  });
  rmSync(stateDir, { recursive: true, force: true });
});

const tokenTask = (key: string) => ({
  Type: "Task",
  Resource: "arn:aws:states:::lambda:invoke.waitForTaskToken",
  Parameters: { FunctionName: "Fn", Payload: { key, "token.$": "$$.Task.Token" } },
});

describe("sfn-local survives kill -9", () => {
  it("resumes tokens, waits, retries and Map iterations where they were; nothing runs twice", async () => {
    const first = await startEngine();
    const c1 = first.client;

    // 1. A task waiting on its token.
    const tokenArn = await createMachine(c1, {
      StartAt: "T",
      States: { T: { ...tokenTask("tok"), End: true } },
    });
    const tokenExec = (
      await c1.send(new StartExecutionCommand({ stateMachineArn: tokenArn, name: "tokenRun" }))
    ).executionArn as string;

    // 2. A Wait of 3 s, then a Pass.
    const waitArn = await createMachine(c1, {
      StartAt: "W",
      States: { W: { Type: "Wait", Seconds: 3, Next: "P" }, P: { Type: "Pass", End: true } },
    });
    const waitExec = (await c1.send(new StartExecutionCommand({ stateMachineArn: waitArn, name: "waitRun" })))
      .executionArn as string;

    // 3. A task that always fails, retried twice 2 s apart: exactly 3 calls in all.
    const retryArn = await createMachine(c1, {
      StartAt: "R",
      States: {
        R: {
          Type: "Task",
          Resource: "arn:aws:states:::lambda:invoke",
          Parameters: { FunctionName: "Fn", Payload: { key: "retry", fail: true } },
          Retry: [{ ErrorEquals: ["Boom"], IntervalSeconds: 2, BackoffRate: 1, MaxAttempts: 2 }],
          End: true,
        },
      },
    });
    const retryExec = (
      await c1.send(new StartExecutionCommand({ stateMachineArn: retryArn, name: "retryRun" }))
    ).executionArn as string;

    // 4. A Map of three token tasks; the first finishes before the crash.
    const mapArn = await createMachine(c1, {
      StartAt: "M",
      States: {
        M: {
          Type: "Map",
          ItemsPath: "$.keys",
          ItemProcessor: {
            StartAt: "T",
            States: {
              T: {
                Type: "Task",
                Resource: "arn:aws:states:::lambda:invoke.waitForTaskToken",
                Parameters: { FunctionName: "Fn", Payload: { "key.$": "$", "token.$": "$$.Task.Token" } },
                End: true,
              },
            },
          },
          End: true,
        },
      },
    });
    const mapExec = (
      await c1.send(
        new StartExecutionCommand({
          stateMachineArn: mapArn,
          name: "mapRun",
          input: '{"keys":["m0","m1","m2"]}',
        }),
      )
    ).executionArn as string;

    await until(() => tokens.get("tok"));
    await until(() => (tokens.has("m0") && tokens.has("m1") && tokens.has("m2") ? true : undefined));
    await c1.send(new SendTaskSuccessCommand({ taskToken: tokens.get("m0") as string, output: '"zero"' }));
    await until(async () => {
      const h = await history(c1, mapExec);
      return h.some((e) => e.type === "MapIterationSucceeded") ? true : undefined;
    });
    await until(async () =>
      (await history(c1, retryExec)).some((e) => e.type === "TaskFailed") ? true : undefined,
    );
    const waitEntered = await until(async () =>
      (await history(c1, waitExec)).find((e) => e.type === "WaitStateEntered"),
    );

    await kill9(first);
    const second = await startEngine();
    const c2 = second.client;

    // The acknowledged executions exist and are still running.
    for (const arn of [tokenExec, mapExec]) {
      expect((await c2.send(new DescribeExecutionCommand({ executionArn: arn }))).status).toBe("RUNNING");
    }
    // Tokens handed out before the crash are still valid.
    await c2.send(
      new SendTaskSuccessCommand({ taskToken: tokens.get("tok") as string, output: '{"after":"restart"}' }),
    );
    const t = await waitDone(c2, tokenExec);
    expect(t.status).toBe("SUCCEEDED");
    expect(JSON.parse(t.output as string)).toEqual({ after: "restart" });
    expect(calls.get("tok")).toBe(1);

    await c2.send(new SendTaskSuccessCommand({ taskToken: tokens.get("m1") as string, output: '"one"' }));
    await c2.send(new SendTaskSuccessCommand({ taskToken: tokens.get("m2") as string, output: '"two"' }));
    const m = await waitDone(c2, mapExec);
    expect(m.status).toBe("SUCCEEDED");
    expect(JSON.parse(m.output as string)).toEqual(["zero", "one", "two"]);
    for (const k of ["m0", "m1", "m2"]) expect(calls.get(k)).toBe(1);
    const mapHistory = await history(c2, mapExec);
    expect(mapHistory.filter((e) => e.type === "MapIterationStarted")).toHaveLength(3);
    expect(mapHistory.map((e) => e.id)).toEqual(mapHistory.map((_, i) => i + 1));

    const w = await waitDone(c2, waitExec);
    expect(w.status).toBe("SUCCEEDED");
    const wh = await history(c2, waitExec);
    expect(wh.filter((e) => e.type === "WaitStateEntered")).toHaveLength(1);
    const exited = wh.find((e) => e.type === "WaitStateExited")?.timestamp;
    expect(exited).toBeInstanceOf(Date);
    expect((exited as Date).getTime()).toBeGreaterThanOrEqual(
      (waitEntered.timestamp as Date).getTime() + 3000,
    );

    const r = await waitDone(c2, retryExec);
    expect(r).toMatchObject({ status: "FAILED", error: "Boom" });
    expect(calls.get("retry")).toBe(3);
    expect((await history(c2, retryExec)).filter((e) => e.type === "TaskFailed")).toHaveLength(3);
    await kill9(second);
  });
});

describe("sfn-local killed in the middle of a long Pass chain", () => {
  it("resumes the chain where it was, then its task: no event missing or written twice", async () => {
    const n = 3000;
    const states: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) states[`S${i}`] = { Type: "Pass", Next: i + 1 < n ? `S${i + 1}` : "T" };
    states.T = { ...tokenTask("chain"), Next: "P" };
    states.P = { Type: "Pass", End: true };
    const first = await startEngine();
    const arn = await createMachine(first.client, { StartAt: "S0", States: states });
    const exec = (
      await first.client.send(new StartExecutionCommand({ stateMachineArn: arn, name: "chainRun" }))
    ).executionArn as string;
    // Killed as soon as the start is acknowledged: the chain runs on in slices between flushes.
    await kill9(first);
    const second = await startEngine();
    const c2 = second.client;
    const token = await until(() => tokens.get("chain"));
    await c2.send(new SendTaskSuccessCommand({ taskToken: token, output: '{"done":true}' }));
    const d = await waitDone(c2, exec);
    expect(d.status).toBe("SUCCEEDED");
    expect(JSON.parse(d.output as string)).toEqual({ done: true });
    const h = await history(c2, exec);
    expect(h.map((e) => e.id)).toEqual(h.map((_, i) => i + 1));
    expect(h.map((e) => e.previousEventId)).toEqual(h.map((_, i) => i));
    const entered = h.filter((e) => e.stateEnteredEventDetails).map((e) => e.stateEnteredEventDetails?.name);
    expect(entered).toEqual([...Array.from({ length: n }, (_, i) => `S${i}`), "T", "P"]);
    const exited = h.filter((e) => e.stateExitedEventDetails).map((e) => e.stateExitedEventDetails?.name);
    expect(exited).toEqual([...Array.from({ length: n }, (_, i) => `S${i}`), "T", "P"]);
    expect(h.filter((e) => e.type === "TaskScheduled")).toHaveLength(1);
    expect(h.filter((e) => e.type === "TaskSucceeded")).toHaveLength(1);
    await kill9(second);
  });
});
