import {
  CreateStateMachineCommand,
  DeleteStateMachineCommand,
  DescribeExecutionCommand,
  DescribeStateMachineCommand,
  DescribeStateMachineForExecutionCommand,
  GetExecutionHistoryCommand,
  ListExecutionsCommand,
  ListStateMachinesCommand,
  StartExecutionCommand,
  StopExecutionCommand,
  UpdateStateMachineCommand,
} from "@aws-sdk/client-sfn";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createMachine,
  history,
  ROLE,
  startTestSfn,
  type TestSfn,
  uniqueName,
  until,
  waitDone,
} from "./helpers.js";

let sfn: TestSfn;
beforeAll(async () => {
  sfn = await startTestSfn();
});
afterAll(async () => {
  await sfn.close();
});

const PASS = { StartAt: "A", States: { A: { Type: "Pass", End: true } } };
const WAIT_LONG = { StartAt: "W", States: { W: { Type: "Wait", Seconds: 3600, End: true } } };

async function apiError(p: Promise<unknown>): Promise<{ name: string; message: string; status?: number }> {
  try {
    await p;
  } catch (e) {
    const err = e as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: err.name, message: err.message, status: err.$metadata?.httpStatusCode };
  }
  throw new Error("expected the call to fail");
}

describe("state machines", () => {
  it("creates, describes, updates, lists and deletes", async () => {
    const c = sfn.client;
    const name = uniqueName("sm");
    const arn = await createMachine(c, PASS, name);
    expect(arn).toBe(`arn:aws:states:us-east-1:123456789012:stateMachine:${name}`);
    const d = await c.send(new DescribeStateMachineCommand({ stateMachineArn: arn }));
    expect(d).toMatchObject({ name, status: "ACTIVE", type: "STANDARD", roleArn: ROLE });
    expect(JSON.parse(d.definition as string)).toEqual(PASS);
    expect(d.creationDate).toBeInstanceOf(Date);

    // Same request again is idempotent; a different definition under the same name is refused.
    const again = await c.send(
      new CreateStateMachineCommand({ name, roleArn: ROLE, definition: JSON.stringify(PASS) }),
    );
    expect(again.stateMachineArn).toBe(arn);
    const clash = await apiError(
      c.send(new CreateStateMachineCommand({ name, roleArn: ROLE, definition: JSON.stringify(WAIT_LONG) })),
    );
    expect(clash.name).toBe("StateMachineAlreadyExists");

    const u = await c.send(
      new UpdateStateMachineCommand({ stateMachineArn: arn, definition: JSON.stringify(WAIT_LONG) }),
    );
    expect(u.updateDate).toBeInstanceOf(Date);
    const d2 = await c.send(new DescribeStateMachineCommand({ stateMachineArn: arn }));
    expect(JSON.parse(d2.definition as string)).toEqual(WAIT_LONG);

    const list = await c.send(new ListStateMachinesCommand({}));
    expect(list.stateMachines?.map((s) => s.stateMachineArn)).toContain(arn);

    await c.send(new DeleteStateMachineCommand({ stateMachineArn: arn }));
    const gone = await apiError(c.send(new DescribeStateMachineCommand({ stateMachineArn: arn })));
    expect(gone).toMatchObject({ name: "StateMachineDoesNotExist", status: 400 });
  });

  it("pages ListStateMachines", async () => {
    for (let i = 0; i < 5; i++) await createMachine(sfn.client, PASS);
    const seen: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await sfn.client.send(new ListStateMachinesCommand({ maxResults: 2, nextToken }));
      expect(page.stateMachines?.length).toBeLessThanOrEqual(2);
      seen.push(...(page.stateMachines ?? []).map((s) => s.name as string));
      nextToken = page.nextToken;
    } while (nextToken);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBeGreaterThanOrEqual(5);
  });

  it("refuses invalid definitions with a message that points at the fault", async () => {
    const bad = async (definition: unknown) =>
      apiError(
        sfn.client.send(
          new CreateStateMachineCommand({
            name: uniqueName("bad"),
            roleArn: ROLE,
            definition: typeof definition === "string" ? definition : JSON.stringify(definition),
          }),
        ),
      );
    const missing = await bad({ StartAt: "A", States: { A: { Type: "Pass", Next: "Nowhere" } } });
    expect(missing.name).toBe("InvalidDefinition");
    expect(missing.message).toContain("Nowhere");
    expect(missing.message).toContain("/States/A/Next");
    expect((await bad("{not json")).name).toBe("InvalidDefinition");
    const badPath = await bad({
      StartAt: "A",
      States: { A: { Type: "Pass", InputPath: "nope", End: true } },
    });
    expect(badPath.message).toContain("/States/A/InputPath");
    const unreachable = await bad({
      StartAt: "A",
      States: { A: { Type: "Pass", End: true }, B: { Type: "Pass", End: true } },
    });
    expect(unreachable.message).toContain("B");
    const badType = await bad({ StartAt: "A", States: { A: { Type: "Teleport", End: true } } });
    expect(badType.message).toContain("/States/A/Type");
  });

  it("checks names and ARNs", async () => {
    for (const name of ["", "a".repeat(81), "has space", "semi;colon", "star*", "new\nline"]) {
      const e = await apiError(
        sfn.client.send(
          new CreateStateMachineCommand({ name, roleArn: ROLE, definition: JSON.stringify(PASS) }),
        ),
      );
      expect(e.name, JSON.stringify(name)).toMatch(/InvalidName|ValidationException/);
    }
    const e = await apiError(
      sfn.client.send(new DescribeStateMachineCommand({ stateMachineArn: "not-an-arn" })),
    );
    expect(e.name).toBe("InvalidArn");
  });
});

describe("executions", () => {
  it("runs to the end and describes it, with the machine it ran", async () => {
    const arn = await createMachine(sfn.client, {
      StartAt: "A",
      States: { A: { Type: "Pass", Parameters: { "doubled.$": "States.MathAdd($.n, $.n)" }, End: true } },
    });
    const s = await sfn.client.send(new StartExecutionCommand({ stateMachineArn: arn, input: '{"n":21}' }));
    const d = await waitDone(sfn.client, s.executionArn as string);
    expect(d.status).toBe("SUCCEEDED");
    expect(JSON.parse(d.output as string)).toEqual({ doubled: 42 });
    expect(d.stopDate).toBeInstanceOf(Date);
    const m = await sfn.client.send(
      new DescribeStateMachineForExecutionCommand({ executionArn: s.executionArn }),
    );
    expect(m.stateMachineArn).toBe(arn);
    expect(JSON.parse(m.definition as string).StartAt).toBe("A");
  });

  it("is idempotent by name exactly as AWS: same name and input while running → same answer", async () => {
    const arn = await createMachine(sfn.client, WAIT_LONG);
    const name = uniqueName("ex");
    const a = await sfn.client.send(
      new StartExecutionCommand({ stateMachineArn: arn, name, input: '{"a":1}' }),
    );
    const b = await sfn.client.send(
      new StartExecutionCommand({ stateMachineArn: arn, name, input: '{"a":1}' }),
    );
    expect(b.executionArn).toBe(a.executionArn);
    expect(b.startDate?.getTime()).toBe(a.startDate?.getTime());
    const other = await apiError(
      sfn.client.send(new StartExecutionCommand({ stateMachineArn: arn, name, input: '{"a":2}' })),
    );
    expect(other.name).toBe("ExecutionAlreadyExists");
    await sfn.client.send(new StopExecutionCommand({ executionArn: a.executionArn }));
    // Once closed, even the same input is refused.
    const closed = await apiError(
      sfn.client.send(new StartExecutionCommand({ stateMachineArn: arn, name, input: '{"a":1}' })),
    );
    expect(closed.name).toBe("ExecutionAlreadyExists");
  });

  it("stops an execution with error and cause", async () => {
    const arn = await createMachine(sfn.client, WAIT_LONG);
    const s = await sfn.client.send(new StartExecutionCommand({ stateMachineArn: arn }));
    await sfn.client.send(
      new StopExecutionCommand({ executionArn: s.executionArn, error: "Why", cause: "Because" }),
    );
    const d = await sfn.client.send(new DescribeExecutionCommand({ executionArn: s.executionArn }));
    expect(d).toMatchObject({ status: "ABORTED", error: "Why", cause: "Because" });
    const h = await history(sfn.client, s.executionArn as string);
    expect(h.at(-1)?.type).toBe("ExecutionAborted");
    expect(h.at(-1)?.executionAbortedEventDetails).toEqual({ error: "Why", cause: "Because" });
  });

  it("lists executions with a status filter and pages", async () => {
    const arn = await createMachine(sfn.client, {
      StartAt: "C",
      States: {
        C: {
          Type: "Choice",
          Choices: [{ Variable: "$.wait", BooleanEquals: true, Next: "W" }],
          Default: "P",
        },
        W: { Type: "Wait", Seconds: 3600, End: true },
        P: { Type: "Pass", End: true },
      },
    });
    const started: string[] = [];
    for (let i = 0; i < 5; i++) {
      const s = await sfn.client.send(
        new StartExecutionCommand({ stateMachineArn: arn, input: JSON.stringify({ wait: i < 2 }) }),
      );
      started.push(s.executionArn as string);
    }
    for (const e of started.slice(2)) await waitDone(sfn.client, e);
    const running = await sfn.client.send(
      new ListExecutionsCommand({ stateMachineArn: arn, statusFilter: "RUNNING" }),
    );
    expect(running.executions?.map((e) => e.executionArn).sort()).toEqual(started.slice(0, 2).sort());
    const seen: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await sfn.client.send(
        new ListExecutionsCommand({ stateMachineArn: arn, maxResults: 2, nextToken }),
      );
      seen.push(...(page.executions ?? []).map((e) => e.executionArn as string));
      nextToken = page.nextToken;
    } while (nextToken);
    expect(seen.sort()).toEqual([...started].sort());
    const badToken = await apiError(
      sfn.client.send(new ListExecutionsCommand({ stateMachineArn: arn, nextToken: "garbage" })),
    );
    expect(badToken.name).toBe("InvalidToken");
    for (const e of started.slice(0, 2)) await sfn.client.send(new StopExecutionCommand({ executionArn: e }));
  });

  it("pages the history in both orders, in AWS's event format", async () => {
    const states: Record<string, unknown> = {};
    for (let i = 0; i < 10; i++)
      states[`S${i}`] = i < 9 ? { Type: "Pass", Next: `S${i + 1}` } : { Type: "Pass", End: true };
    const arn = await createMachine(sfn.client, { StartAt: "S0", States: states });
    const s = await sfn.client.send(new StartExecutionCommand({ stateMachineArn: arn, input: '{"x":1}' }));
    await waitDone(sfn.client, s.executionArn as string);
    const all = await history(sfn.client, s.executionArn as string);
    expect(all).toHaveLength(22);
    expect(all.map((e) => e.id)).toEqual(Array.from({ length: 22 }, (_, i) => i + 1));
    expect(all[0]).toMatchObject({
      type: "ExecutionStarted",
      id: 1,
      previousEventId: 0,
      executionStartedEventDetails: { input: '{"x":1}', inputDetails: { truncated: false }, roleArn: ROLE },
    });
    expect(all[1]).toMatchObject({
      type: "PassStateEntered",
      previousEventId: 1,
      stateEnteredEventDetails: { name: "S0" },
    });
    expect(all[0]?.timestamp).toBeInstanceOf(Date);
    const reversed: number[] = [];
    let nextToken: string | undefined;
    do {
      const page = await sfn.client.send(
        new GetExecutionHistoryCommand({
          executionArn: s.executionArn,
          maxResults: 5,
          reverseOrder: true,
          nextToken,
        }),
      );
      expect(page.events?.length).toBeLessThanOrEqual(5);
      reversed.push(...(page.events ?? []).map((e) => e.id as number));
      nextToken = page.nextToken;
    } while (nextToken);
    expect(reversed).toEqual(Array.from({ length: 22 }, (_, i) => 22 - i));
  });

  it("answers AWS-shaped errors for unknown executions and bad input", async () => {
    const unknown = await apiError(
      sfn.client.send(
        new DescribeExecutionCommand({
          executionArn: "arn:aws:states:us-east-1:123456789012:execution:nope:nope",
        }),
      ),
    );
    expect(unknown).toMatchObject({ name: "ExecutionDoesNotExist", status: 400 });
    const arn = await createMachine(sfn.client, PASS);
    const badInput = await apiError(
      sfn.client.send(new StartExecutionCommand({ stateMachineArn: arn, input: "{oops" })),
    );
    expect(badInput.name).toBe("InvalidExecutionInput");
    const big = await apiError(
      sfn.client.send(
        new StartExecutionCommand({
          stateMachineArn: arn,
          input: JSON.stringify({ s: "x".repeat(262_144) }),
        }),
      ),
    );
    expect(big.name).toBe("ValidationException");
    expect(big.message).toContain("262144");
    const badName = await apiError(
      sfn.client.send(new StartExecutionCommand({ stateMachineArn: arn, name: "a/b" })),
    );
    expect(badName.name).toBe("InvalidName");
  });

  it("fails an execution whose state output exceeds 256 KiB with States.DataLimitExceeded", async () => {
    const d = await until(async () => {
      const arn = await createMachine(sfn.client, {
        StartAt: "Big",
        States: { Big: { Type: "Pass", Parameters: { "a.$": "$.s", "b.$": "$.s" }, End: true } },
      });
      const s = await sfn.client.send(
        new StartExecutionCommand({
          stateMachineArn: arn,
          input: JSON.stringify({ s: "x".repeat(200_000) }),
        }),
      );
      return waitDone(sfn.client, s.executionArn as string);
    });
    expect(d.status).toBe("FAILED");
    expect(d.error).toBe("States.DataLimitExceeded");
    expect(d.cause).toContain("'Big'");
  });

  it("fails an execution that reaches 25,000 history events, as AWS does", async () => {
    const arn = await createMachine(sfn.client, {
      StartAt: "Loop",
      States: { Loop: { Type: "Pass", Next: "Loop2" }, Loop2: { Type: "Pass", Next: "Loop" } },
    });
    const s = await sfn.client.send(new StartExecutionCommand({ stateMachineArn: arn }));
    const d = await waitDone(sfn.client, s.executionArn as string);
    expect(d.status).toBe("FAILED");
    expect(d.cause).toContain("25000");
    const h = await history(sfn.client, s.executionArn as string);
    expect(h).toHaveLength(25_000);
    expect(h.at(-1)?.type).toBe("ExecutionFailed");
  });
});
