import { type HistoryEvent, StartExecutionCommand, StopExecutionCommand } from "@aws-sdk/client-sfn";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  apiTransport,
  IdempotencyConflict,
  runJob,
  sfnTransport,
  type Transport,
} from "../../../cli/client/index.js";
import { executionArnOf } from "../../../functions/api/job-id.js";
import { createJobsApi } from "../../../functions/api/jobs.js";
import { createMemoryResultsStore } from "../../../functions/clients/results-store.js";
import { createSfnExecutionsApi } from "../../../functions/clients/sfn.js";
import { createMachine, startTestSfn, type TestSfn, uniqueName, waitDone } from "../sfn/helpers.js";

// The TypeScript client's direct connection to Step Functions, against the embedded engine.

let sfn: TestSfn;
let echo: string;
beforeAll(async () => {
  sfn = await startTestSfn();
  echo = await createMachine(sfn.client, { StartAt: "P", States: { P: { Type: "Pass", End: true } } });
});
afterAll(async () => {
  await sfn?.close();
});

const transportOf = (stateMachineArn: string) => sfnTransport({ endpoint: sfn.server.url, stateMachineArn });
const spec = (command: string[]) => ({
  name: "nightly",
  accelerator: { kind: "cpu" as const, hosts: 1 },
  workload: { command },
});

describe("the SFN connection's idempotency key", () => {
  it("names one job per key, however alike two keys start", async () => {
    const t = transportOf(echo);
    const a = await t.submit(spec(["a"]), { idempotencyKey: "nightly-2024-06-01" });
    const b = await t.submit(spec(["b"]), { idempotencyKey: "nightly-2024-06-02" });
    expect(a.jobId).not.toBe(b.jobId);
    for (const { jobId } of [a, b]) expect(jobId).toMatch(/^nightly-[0-9a-f]{12}$/);
    // A long key, and one of characters an execution name cannot hold, still make a valid name.
    const odd = await t.submit(spec(["c"]), { idempotencyKey: `${"x".repeat(300)} / ünïcode {}` });
    expect(odd.jobId.length).toBeLessThanOrEqual(80);
  });

  it("answers the same job when retried after it ended, and refuses the key for another spec", async () => {
    const t = transportOf(echo);
    const key = `retry-${uniqueName()}`;
    const first = await t.submit(spec(["train"]), { idempotencyKey: key });
    expect((await waitDone(sfn.client, first.executionArn)).status).toBe("SUCCEEDED");
    // Another client, the same spec written in another key order: the same job.
    const again = await transportOf(echo).submit(
      { workload: { command: ["train"] }, accelerator: { hosts: 1, kind: "cpu" }, name: "nightly" },
      { idempotencyKey: key },
    );
    expect(again).toEqual(first);
    const refused = await t.submit(spec(["other"]), { idempotencyKey: key }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(IdempotencyConflict);
    expect(refused).toMatchObject({ name: "IdempotencyConflict", message: expect.stringContaining(key) });
  });

  it("names the same job as the API does for the same key and spec, whichever starts it", async () => {
    const app = createJobsApi({
      executions: createSfnExecutionsApi(sfn.client),
      store: createMemoryResultsStore(),
      tokens: { succeed: async () => "sent", fail: async () => "sent", heartbeat: async () => "sent" },
      clock: { now: () => Date.now() },
      stateMachineArn: echo,
    });
    const api = apiTransport({
      api: "http://gangway.test",
      fetch: ((url: string, init: RequestInit) => app.request(url, init)) as typeof fetch,
    });
    // The API stores the spec with its defaults filled in; so must the SFN connection, or the
    // same key and spec would be a conflict.
    const key = `api-first-${uniqueName()}`;
    const viaApi = await api.submit(spec(["train"]), { idempotencyKey: key });
    await waitDone(sfn.client, viaApi.executionArn);
    expect(await transportOf(echo).submit(spec(["train"]), { idempotencyKey: key })).toEqual(viaApi);

    const other = `sfn-first-${uniqueName()}`;
    const viaSfn = await transportOf(echo).submit(spec(["eval"]), { idempotencyKey: other });
    await waitDone(sfn.client, viaSfn.executionArn);
    expect(await api.submit(spec(["eval"]), { idempotencyKey: other })).toEqual(viaSfn);
  });

  it("takes an empty key for none, as the API client does", async () => {
    const t = transportOf(echo);
    const a = await t.submit(spec(["a"]), { idempotencyKey: "" });
    await waitDone(sfn.client, a.executionArn);
    const b = await t.submit(spec(["b"]), { idempotencyKey: "" });
    expect(b.jobId).not.toBe(a.jobId);
    for (const { jobId } of [a, b]) expect(jobId).toMatch(/^nightly-[0-9a-f]{8}$/);
  });
});

describe("the SFN connection's view of a job", () => {
  it("ends its walk of a job's executions at one already walked: outputs that name each other", async () => {
    const loops = await createMachine(sfn.client, {
      StartAt: "P",
      States: { P: { Type: "Pass", Parameters: { "continuedAs.$": "$.next" }, End: true } },
    });
    const [a, b] = [uniqueName("a"), uniqueName("b")];
    for (const [name, next] of [
      [a, b],
      [b, a],
    ] as const) {
      const input = JSON.stringify({ next: executionArnOf(loops, next) });
      const started = await sfn.client.send(
        new StartExecutionCommand({ stateMachineArn: loops, name, input }),
      );
      await waitDone(sfn.client, started.executionArn ?? "");
    }
    const t = transportOf(loops);
    const job = { jobId: a, executionArn: executionArnOf(loops, a) };
    // b ended SUCCEEDED naming a, which is no JobStatus: the job ended without one.
    expect(await t.result(job)).toMatchObject({
      status: "ERROR",
      info: { executionArn: executionArnOf(loops, b) },
    });
    const events = await t.history(job);
    expect(events.filter((e) => e.type === "ExecutionStarted")).toHaveLength(2);
  });

  it("ends the wait for an execution stopped outside gangway", async () => {
    const waits = await createMachine(sfn.client, {
      StartAt: "W",
      States: { W: { Type: "Wait", Seconds: 600, End: true } },
    });
    const t = transportOf(waits);
    const job = await t.submit(spec(["long"]));
    expect(await t.result(job)).toBeUndefined();
    await sfn.client.send(new StopExecutionCommand({ executionArn: job.executionArn }));
    expect(await t.result(job)).toMatchObject({ status: "ERROR", error: { name: "ExecutionAborted" } });
  });

  it("reads a job's history through the execution it continued in, every event once", async () => {
    // The continuation (b) runs a while, then ends with the job's status; the first execution (a)
    // ends at once with `{continuedAs: b}`, as ContinueExecution makes it.
    const finalStatus = {
      status: "SUCCEEDED",
      info: { name: "nightly", jobId: "a", state: "succeeded", kind: "cpu" },
      counters: { attempts: 4, preemptions: 3, failures: 0 },
      result: 42,
    };
    const continued = await createMachine(sfn.client, {
      StartAt: "W",
      States: {
        W: { Type: "Wait", Seconds: 1, Next: "P" },
        P: { Type: "Pass", Result: finalStatus, End: true },
      },
    });
    const continuing = await createMachine(sfn.client, {
      StartAt: "P",
      States: { P: { Type: "Pass", Parameters: { "continuedAs.$": "$.next", jobId: "a" }, End: true } },
    });
    const b = await sfn.client.send(
      new StartExecutionCommand({ stateMachineArn: continued, name: uniqueName("b"), input: "{}" }),
    );
    const a = await sfn.client.send(
      new StartExecutionCommand({
        stateMachineArn: continuing,
        name: uniqueName("a"),
        input: JSON.stringify({ next: b.executionArn }),
      }),
    );
    const t = transportOf(continuing);
    const transport: Transport = {
      ...t,
      submit: async () => ({ jobId: "a", executionArn: a.executionArn ?? "" }),
    };
    const events: HistoryEvent[] = [];
    const status = await runJob(spec(["x"]), {
      connection: { transport },
      pollMs: 50,
      onEvent: (e) => events.push(e),
    });
    expect(status).toEqual(finalStatus);
    expect(events.filter((e) => e.type === "ExecutionStarted")).toHaveLength(2);
    expect(events.filter((e) => e.type === "ExecutionSucceeded")).toHaveLength(2);
    expect(events.at(-1)?.executionSucceededEventDetails?.output).toBe(JSON.stringify(finalStatus));
    const history = await t.history({ jobId: "a", executionArn: a.executionArn ?? "" });
    expect(history).toEqual(events);
  });
});
