import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createSfnEngine, type SfnEngine } from "../../../infra/local/sfn/engine.js";
import { decodeEvent, decodeRun } from "../../../infra/local/sfn/journal.js";
import type { JournalRecord } from "../../../infra/local/sfn/model.js";

// Resume with an injected clock: the second engine's clock is almost an hour later, so a Wait (or a
// retry back-off) that resumed with its remaining time ends at once, while one restarted from the
// beginning would wait another hour and time the test out.
const ROLE = "arn:aws:iam::123456789012:role/r";
const HOUR_MS = 3_600_000;
let dir: string | undefined;
const engines: SfnEngine[] = [];

afterEach(async () => {
  for (const e of engines.splice(0)) await e.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function engineAt(offsetMs: number, lambdas = {}): Promise<SfnEngine> {
  dir ??= mkdtempSync(join(tmpdir(), "gangway-sfn-resume-"));
  const e = await createSfnEngine({ stateDir: dir, clock: () => Date.now() + offsetMs, lambdas });
  engines.push(e);
  return e;
}

async function until<T>(f: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function start(engine: SfnEngine, definition: unknown): Promise<string> {
  const { stateMachineArn } = (await engine.call("CreateStateMachine", {
    name: `m${Math.random().toString(36).slice(2)}`,
    roleArn: ROLE,
    definition: JSON.stringify(definition),
  })) as { stateMachineArn: string };
  const { executionArn } = (await engine.call("StartExecution", { stateMachineArn })) as {
    executionArn: string;
  };
  return executionArn;
}

const describeExec = async (engine: SfnEngine, executionArn: string) =>
  (await engine.call("DescribeExecution", { executionArn })) as { status: string; error?: string };
const types = async (engine: SfnEngine, executionArn: string) =>
  (
    (await engine.call("GetExecutionHistory", { executionArn, maxResults: 1000 })) as {
      events: { type: string }[];
    }
  ).events.map((e) => e.type);

describe("resume after a restart", () => {
  it("resumes a Wait with its remaining time, not from the start", async () => {
    const first = await engineAt(0);
    const arn = await start(first, {
      StartAt: "W",
      States: { W: { Type: "Wait", Seconds: 3600, End: true } },
    });
    await until(async () => ((await types(first, arn)).includes("WaitStateEntered") ? true : undefined));
    await first.close();
    const second = await engineAt(HOUR_MS - 50);
    const d = await until(async () => {
      const x = await describeExec(second, arn);
      return x.status === "RUNNING" ? undefined : x;
    });
    expect(d.status).toBe("SUCCEEDED");
    expect((await types(second, arn)).filter((t) => t === "WaitStateEntered")).toHaveLength(1);
  });

  it("keeps retry counts and the back-off deadline", async () => {
    let calls = 0;
    const failing = () => {
      calls += 1;
      throw Object.assign(new Error("no"), { name: "Boom" });
    };
    const first = await engineAt(0, { F: failing });
    const arn = await start(first, {
      StartAt: "T",
      States: {
        T: {
          Type: "Task",
          Resource: "arn:aws:lambda:us-east-1:123456789012:function:F",
          Retry: [{ ErrorEquals: ["Boom"], IntervalSeconds: 3600, MaxAttempts: 1 }],
          End: true,
        },
      },
    });
    await until(async () => ((await types(first, arn)).includes("LambdaFunctionFailed") ? true : undefined));
    await first.close();
    const second = await engineAt(HOUR_MS, { F: failing });
    const d = await until(async () => {
      const x = await describeExec(second, arn);
      return x.status === "RUNNING" ? undefined : x;
    });
    expect(d).toMatchObject({ status: "FAILED", error: "Boom" });
    expect(calls).toBe(2);
  });

  it("keeps acknowledged state machines and finished executions", async () => {
    const first = await engineAt(0);
    const arn = await start(first, { StartAt: "P", States: { P: { Type: "Pass", Result: 7, End: true } } });
    await until(async () => ((await describeExec(first, arn)).status === "SUCCEEDED" ? true : undefined));
    await first.close();
    const second = await engineAt(0);
    const d = (await second.call("DescribeExecution", { executionArn: arn })) as {
      status: string;
      output: string;
    };
    expect(d).toMatchObject({ status: "SUCCEEDED", output: "7" });
    expect(await types(second, arn)).toEqual([
      "ExecutionStarted",
      "PassStateEntered",
      "PassStateExited",
      "ExecutionSucceeded",
    ]);
  });
});

describe("executions of a machine updated between their starts", () => {
  it("resume each with the definition it started with", async () => {
    const first = await engineAt(0);
    const version = (v: string) =>
      JSON.stringify({
        StartAt: "W",
        States: { W: { Type: "Wait", Seconds: 3600, Next: "P" }, P: { Type: "Pass", Result: v, End: true } },
      });
    const { stateMachineArn } = (await first.call("CreateStateMachine", {
      name: "versions",
      roleArn: ROLE,
      definition: version("v1"),
    })) as { stateMachineArn: string };
    const started = async () =>
      ((await first.call("StartExecution", { stateMachineArn })) as { executionArn: string }).executionArn;
    const a = await started();
    await first.call("UpdateStateMachine", { stateMachineArn, definition: version("v2") });
    const b = await started();
    await first.close();
    const second = await engineAt(HOUR_MS);
    for (const [arn, v] of [
      [a, "v1"],
      [b, "v2"],
    ] as const) {
      const d = await until(async () => {
        const x = (await second.call("DescribeExecution", { executionArn: arn })) as {
          status: string;
          output?: string;
        };
        return x.status === "RUNNING" ? undefined : x;
      });
      expect(d).toMatchObject({ status: "SUCCEEDED", output: JSON.stringify(v) });
      const sm = (await second.call("DescribeStateMachineForExecution", { executionArn: arn })) as {
        definition: string;
      };
      expect(sm.definition).toBe(version(v));
    }
  });
});

describe("replay of a journal cut in the middle of pure transitions", () => {
  it("resumes at the last entered state without repeating an event", async () => {
    const { readFileSync, writeFileSync } = await import("node:fs");
    const first = await engineAt(0);
    const states: Record<string, unknown> = {};
    for (let i = 0; i < 6; i++)
      states[`S${i}`] = { Type: "Pass", Result: i, Next: i < 5 ? `S${i + 1}` : "W" };
    states.W = { Type: "Wait", Seconds: 3600, End: true };
    const arn = await start(first, { StartAt: "S0", States: states });
    await until(async () => ((await types(first, arn)).includes("WaitStateEntered") ? true : undefined));
    await first.close();
    // Keep the journal up to S3's StateEntered (event 8), as if the process died right after it.
    const path = join(dir as string, "journal.log");
    const kept: string[] = [];
    for (const line of readFileSync(path, "utf8").split("\n").filter(Boolean)) {
      const r = JSON.parse(line) as JournalRecord;
      if (r.k === "sr") {
        // Written back in the journal's other event form: replay must read both.
        const l = decodeRun(r).filter(([, e]) => e.id <= 8);
        if (l.length > 0) kept.push(JSON.stringify({ k: "evs", x: r.x, l }));
      } else if (r.k === "evs") {
        const l = r.l.map(decodeEvent).filter(([, e]) => e.id <= 8);
        if (l.length > 0) kept.push(JSON.stringify({ k: "evs", x: r.x, l }));
      } else if (r.k === "ev") {
        if (r.e.id <= 8) kept.push(line);
      } else if (r.k !== "cp" && r.k !== "exec") kept.push(line);
    }
    expect(kept.join("\n")).toContain('"id":8');
    expect(kept.join("\n")).not.toContain('"id":9');
    writeFileSync(path, `${kept.join("\n")}\n`);
    const second = await engineAt(0);
    await until(async () => ((await types(second, arn)).includes("WaitStateEntered") ? true : undefined));
    const h = (
      (await second.call("GetExecutionHistory", { executionArn: arn, maxResults: 1000 })) as {
        events: Array<{ id: number; type: string; stateEnteredEventDetails?: { name: string } }>;
      }
    ).events;
    expect(h.map((e) => e.id)).toEqual(h.map((_, i) => i + 1));
    const entered = h.filter((e) => e.stateEnteredEventDetails).map((e) => e.stateEnteredEventDetails?.name);
    expect(entered).toEqual(["S0", "S1", "S2", "S3", "S4", "S5", "W"]);
  });
});

describe("journal compaction while running", () => {
  it("rewrites a grown journal and loses nothing", async () => {
    dir ??= mkdtempSync(join(tmpdir(), "gangway-sfn-resume-"));
    const first = await createSfnEngine({ stateDir: dir, compactAfterBytes: 1 });
    engines.push(first);
    const done = await start(first, {
      StartAt: "P",
      States: { P: { Type: "Pass", Result: "kept", End: true } },
    });
    const waiting = await start(first, {
      StartAt: "W",
      States: { W: { Type: "Wait", Seconds: 3600, End: true } },
    });
    await until(async () => ((await describeExec(first, done)).status === "SUCCEEDED" ? true : undefined));
    await until(async () => ((await types(first, waiting)).includes("WaitStateEntered") ? true : undefined));
    // Let the compactor run at least once (it checks every second).
    await new Promise((r) => setTimeout(r, 1200));
    await first.close();
    const { readFileSync } = await import("node:fs");
    const kinds = readFileSync(join(dir, "journal.log"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { k: string }).k);
    expect(kinds).not.toContain("start");
    expect(kinds.filter((k) => k === "exec")).toHaveLength(2);
    const second = await engineAt(HOUR_MS);
    expect(
      ((await second.call("DescribeExecution", { executionArn: done })) as { output: string }).output,
    ).toBe('"kept"');
    const d = await until(async () => {
      const x = await describeExec(second, waiting);
      return x.status === "RUNNING" ? undefined : x;
    });
    expect(d.status).toBe("SUCCEEDED");
  });
});
