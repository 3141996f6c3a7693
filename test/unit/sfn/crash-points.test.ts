import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createSfnEngine, type SfnEngine } from "../../../infra/local/sfn/engine.js";
import { decodeRun } from "../../../infra/local/sfn/journal.js";
import type { JournalRecord } from "../../../infra/local/sfn/model.js";

// A kill -9 leaves the journal as it was at that instant: everything flushed, nothing queued. The
// engine reads its clock synchronously at every event, so a clock that copies the journal file
// sees every state a kill at any event could leave. Each distinct copy is then restarted and must
// finish with the uninterrupted run's history: every event it held kept as it was, none missing,
// none twice, and no Lambda call whose success it held made again.
const ROLE = "arn:aws:iam::123456789012:role/r";
const FIRST_CLOCK = 1_700_000_000_000;
const RESUMED_CLOCK = 1_800_000_000_000;
const TASKS = [62, 126];
const dirs: string[] = [];
const engines: SfnEngine[] = [];

afterEach(async () => {
  for (const e of engines.splice(0)) await e.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** 400 states: Pass chains (some changing the payload), Choices, an Assign, and two Lambda tasks. */
function definition(): unknown {
  const states: Record<string, unknown> = {};
  const n = 400;
  for (let i = 0; i < n; i++) {
    const next = i + 1 < n ? `S${i + 1}` : undefined;
    const end = next === undefined ? { End: true } : { Next: next };
    let st: Record<string, unknown> = { Type: "Pass", ...end };
    if (TASKS.includes(i))
      st = {
        Type: "Task",
        Resource: "arn:aws:lambda:us-east-1:123456789012:function:F",
        Parameters: { task: i, "n.$": "$.n" },
        ResultPath: "$.last",
        ...end,
      };
    else if (i === 250) st = { Type: "Pass", Assign: { "k.$": "$.n" }, ...end };
    else if (i % 25 === 0) st = { Type: "Pass", Parameters: { "n.$": "States.MathAdd($.n, 1)" }, ...end };
    else if (i % 97 === 0 && next)
      st = { Type: "Choice", Choices: [{ Variable: "$.n", IsPresent: true, Next: next }], Default: next };
    states[`S${i}`] = st;
  }
  return { StartAt: "S0", States: states };
}

interface Event {
  id: number;
  type: string;
  timestamp: number;
  previousEventId: number;
  stateEnteredEventDetails?: { name: string };
  stateExitedEventDetails?: { name: string };
}

async function historyOf(engine: SfnEngine, executionArn: string): Promise<Event[]> {
  const events: Event[] = [];
  let nextToken: string | undefined;
  do {
    const page = (await engine.call("GetExecutionHistory", { executionArn, maxResults: 500, nextToken })) as {
      events: Event[];
      nextToken?: string;
    };
    events.push(...page.events);
    nextToken = page.nextToken;
  } while (nextToken);
  return events;
}

async function finished(
  engine: SfnEngine,
  executionArn: string,
): Promise<{ status: string; output?: string }> {
  for (;;) {
    const d = (await engine.call("DescribeExecution", { executionArn })) as {
      status: string;
      output?: string;
    };
    if (d.status !== "RUNNING") return d;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** How many events of execution 1 a journal text holds. */
function eventsIn(journal: string): number {
  let n = 0;
  for (const line of journal.split("\n").filter(Boolean)) {
    const r = JSON.parse(line) as JournalRecord;
    if (r.k === "sr") n += decodeRun(r).length;
    else if (r.k === "evs") n += r.l.length;
    else if (r.k === "ev") n += 1;
  }
  return n;
}

function spin(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy: the point is that real time passes while the engine is inside a synchronous run
  }
}

const task = (p: unknown) => (p as { task: number }).task;
const label = (e: Event) =>
  `${e.id} ${e.previousEventId} ${e.type} ${(e.stateEnteredEventDetails ?? e.stateExitedEventDetails)?.name ?? ""}`;

describe("a crash at any event of a long Pass chain with tasks", () => {
  it("resumes from every state the journal can be left in, losing and repeating nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gangway-sfn-crash-"));
    dirs.push(dir);
    const path = join(dir, "journal.log");
    const snapshots: string[] = [];
    let size = -1;
    let ticks = 0;
    const clock = () => {
      const now = existsSync(path) ? statSync(path).size : 0;
      if (now !== size) {
        size = now;
        snapshots.push(readFileSync(path, "utf8"));
      }
      // Let real time pass now and then, so the runner yields (and the journal is flushed) in the
      // middle of Pass chains too, not only where a task forces it.
      if (++ticks % 40 === 0) spin(7);
      return FIRST_CLOCK + ticks;
    };
    const firstCalls: number[] = [];
    const first = await createSfnEngine({
      stateDir: dir,
      clock,
      lambdas: {
        F: async (p: unknown) => {
          firstCalls.push(task(p));
          // Real time passes during a call: the runner yields soon after it.
          await new Promise((r) => setTimeout(r, 8));
          return { done: task(p) };
        },
      },
    });
    engines.push(first);
    const { stateMachineArn } = (await first.call("CreateStateMachine", {
      name: "chain",
      roleArn: ROLE,
      definition: JSON.stringify(definition()),
    })) as { stateMachineArn: string };
    const { executionArn } = (await first.call("StartExecution", {
      stateMachineArn,
      name: "run",
      input: '{"n":0}',
    })) as { executionArn: string };
    const expected = await finished(first, executionArn);
    expect(expected.status).toBe("SUCCEEDED");
    const full = await historyOf(first, executionArn);
    expect(firstCalls).toEqual(TASKS);
    snapshots.push(readFileSync(path, "utf8"));
    const points = [...new Set(snapshots)].filter((s) => s.includes('"k":"start"'));
    // Some of them fall inside a Pass chain, and each of those ends at a state's entry: a flush
    // never falls between a state's exit and the next entry.
    const inChain = points
      .map((j) => full[eventsIn(j) - 1]?.type)
      .filter((t) => t === "PassStateEntered" || t === "PassStateExited");
    expect(inChain.length).toBeGreaterThanOrEqual(2);
    expect(inChain.every((t) => t === "PassStateEntered")).toBe(true);

    for (const journal of points) {
      const copy = mkdtempSync(join(tmpdir(), "gangway-sfn-crash-"));
      dirs.push(copy);
      writeFileSync(join(copy, "journal.log"), journal);
      const durable = eventsIn(journal);
      const calls: number[] = [];
      let resumedTicks = 0;
      const second = await createSfnEngine({
        stateDir: copy,
        clock: () => RESUMED_CLOCK + ++resumedTicks,
        lambdas: {
          F: (p: unknown) => {
            calls.push(task(p));
            return { done: task(p) };
          },
        },
      });
      engines.push(second);
      const d = await finished(second, executionArn);
      expect({ status: d.status, output: d.output }).toEqual({
        status: expected.status,
        output: expected.output,
      });
      const h = await historyOf(second, executionArn);
      expect(h.map(label)).toEqual(full.map(label));
      // The events the journal held come back unchanged (their first clock's timestamps); every
      // later one was made after the restart.
      const kept = h.filter((e) => e.timestamp < RESUMED_CLOCK / 1000);
      expect(kept).toHaveLength(durable);
      expect(h.slice(0, durable)).toEqual(full.slice(0, durable));
      // A Lambda call is made again only if its success was not durable.
      const succeeded = kept.filter((e) => e.type === "LambdaFunctionSucceeded").length;
      expect(calls).toEqual(TASKS.slice(succeeded));
      engines.splice(engines.indexOf(second), 1);
      await second.close();
    }
  });
});

describe("a crash right after an acknowledged SendTaskSuccess", () => {
  it("keeps the task's success: the restarted execution goes on with the sent output", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gangway-sfn-crash-"));
    dirs.push(dir);
    let token: string | undefined;
    const first = await createSfnEngine({
      stateDir: dir,
      lambdas: {
        F: (p: unknown) => {
          token = (p as { token: string }).token;
          return {};
        },
      },
    });
    engines.push(first);
    const { stateMachineArn } = (await first.call("CreateStateMachine", {
      name: "token",
      roleArn: ROLE,
      definition: JSON.stringify({
        StartAt: "T",
        States: {
          T: {
            Type: "Task",
            Resource: "arn:aws:states:::lambda:invoke.waitForTaskToken",
            Parameters: { FunctionName: "F", Payload: { "token.$": "$$.Task.Token" } },
            Next: "P",
          },
          P: { Type: "Pass", End: true },
        },
      }),
    })) as { stateMachineArn: string };
    const { executionArn } = (await first.call("StartExecution", { stateMachineArn })) as {
      executionArn: string;
    };
    for (let i = 0; i < 100 && token === undefined; i++) await new Promise((r) => setTimeout(r, 5));
    await first.call("SendTaskSuccess", { taskToken: token, output: '{"sent":true}' });
    // Killed the moment the success was acknowledged: the journal as it is now is all there is.
    const journal = readFileSync(join(dir, "journal.log"), "utf8");
    const copy = mkdtempSync(join(tmpdir(), "gangway-sfn-crash-"));
    dirs.push(copy);
    writeFileSync(join(copy, "journal.log"), journal);
    const second = await createSfnEngine({ stateDir: copy, lambdas: { F: () => ({}) } });
    engines.push(second);
    const d = await finished(second, executionArn);
    expect(d).toMatchObject({ status: "SUCCEEDED", output: '{"sent":true}' });
    const types = (await historyOf(second, executionArn)).map((e) => e.type);
    expect(types.filter((t) => t === "TaskSucceeded")).toHaveLength(1);
    expect(types.filter((t) => t === "TaskSubmitted")).toHaveLength(1);
  });
});
