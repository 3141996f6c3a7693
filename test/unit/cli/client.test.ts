import type { HistoryEvent } from "@aws-sdk/client-sfn";
import { describe, expect, it } from "vitest";
import { createHistoryFeed } from "../../../cli/client/history-feed.js";
import { runJob, type Transport } from "../../../cli/client/index.js";
import { MAX_FAILED_POLLS } from "../../../cli/client/poll-failures.js";
import { apiTransport, GangwayApiError } from "../../../cli/client/transport.js";
import { followJob } from "../../../cli/follow.js";
import { createProgressReader, jobEnded } from "../../../cli/progress.js";
import type { JobStatus } from "../../../core/job-status.js";

// The client and the CLI's follower, against fake control planes: how a job's end is told.

const spec = { name: "j", accelerator: { kind: "cpu" as const, hosts: 1 }, workload: { command: ["true"] } };

/** An API (as `fetch`) whose job `j-1` has the execution status `status` and no JobStatus stored. */
function apiWithExecution(status: string) {
  const calls: string[] = [];
  const fetchImpl = (async (url: string, init: RequestInit) => {
    const path = new URL(url).pathname;
    calls.push(`${init.method} ${path}`);
    const answer = (code: number, body: unknown) =>
      new Response(JSON.stringify(body), { status: code, headers: { "content-type": "application/json" } });
    if (init.method === "POST") return answer(202, { jobId: "j-1", executionArn: "arn:x:j-1" });
    if (path === "/v1/jobs/j-1")
      return answer(200, { jobId: "j-1", status, currentExecutionArn: "arn:x:j-1", attempt: 1, hosts: [] });
    if (path === "/v1/jobs/j-1/status")
      return answer(202, { status, jobId: "j-1", attempt: 1, phase: "running" });
    if (path === "/v1/jobs/j-1/history") return answer(200, { jobId: "j-1", events: [] });
    return answer(404, { code: "NotFound", message: path });
  }) as unknown as typeof fetch;
  return { calls, fetchImpl };
}

const event = (type: string, extra: Partial<HistoryEvent> = {}): HistoryEvent =>
  ({ type, ...extra }) as HistoryEvent;

describe("a job stopped outside gangway", () => {
  it.each([
    ["ABORTED", "ExecutionAborted"],
    ["TIMED_OUT", "ExecutionTimedOut"],
  ])("ends the wait when its execution ended %s, as ERROR %s", async (executionStatus, name) => {
    const api = apiWithExecution(executionStatus);
    const status = await runJob(spec, {
      connection: { transport: apiTransport({ api: "http://api", fetch: api.fetchImpl }) },
      pollMs: 1,
    });
    expect(status).toMatchObject({
      status: "ERROR",
      info: { jobId: "j-1" },
      counters: { attempts: 0 },
      error: { name, message: expect.stringContaining(executionStatus) },
    });
  });

  it("still runs while its execution does", async () => {
    const api = apiWithExecution("RUNNING");
    const transport = apiTransport({ api: "http://api", fetch: api.fetchImpl });
    expect(await transport.result({ jobId: "j-1", executionArn: "arn:x:j-1" })).toBeUndefined();
  });
});

describe("a job's history over its continued executions", () => {
  const first = [
    event("ExecutionStarted"),
    event("TaskStateEntered", { stateEnteredEventDetails: { name: "ContinueExecution" } }),
  ];
  const firstTail = [
    event("TaskStateExited", { stateExitedEventDetails: { name: "ContinueExecution" } }),
    event("ExecutionSucceeded", {
      executionSucceededEventDetails: {
        output: JSON.stringify({ continuedAs: "arn:x:j-1-c2", jobId: "j-1" }),
      },
    }),
  ];
  const second = [event("ExecutionStarted"), event("PassStateEntered")];
  const secondTail = [event("ExecutionSucceeded", { executionSucceededEventDetails: { output: "{}" } })];

  it("hands each event on once and in order, though the merged list grew in its middle", () => {
    const feed = createHistoryFeed();
    expect(feed(first)).toEqual(first);
    // The continuation started before the first execution wrote its last events.
    expect(feed([...first, ...second])).toEqual([]);
    expect(feed([...first, ...firstTail, ...second])).toEqual([...firstTail, ...second]);
    expect(feed([...first, ...firstTail, ...second, ...secondTail])).toEqual(secondTail);
  });

  it("is not the job's end where an execution continued it", () => {
    const reader = createProgressReader();
    const lines = [...first, ...firstTail].flatMap((e) => reader.onEvent(e));
    expect(lines).toContain("continued in a new execution (history limit): arn:x:j-1-c2");
    expect(reader.progress).toMatchObject({ phase: "done", continuedAs: "arn:x:j-1-c2" });
    expect(jobEnded(reader.progress)).toBe(false);
    for (const e of second) reader.onEvent(e);
    expect(jobEnded(reader.progress)).toBe(false);
    for (const e of secondTail) reader.onEvent(e);
    expect(jobEnded(reader.progress)).toBe(true);
  });

  it("is followed to the last execution's end, every event reported", async () => {
    // The job's history as the API serves it, one more event at each look.
    const all = [...first, ...firstTail, ...second, ...secondTail];
    let looks = 0;
    const done = { status: "SUCCEEDED", counters: { attempts: 4 } } as unknown as JobStatus;
    const transport: Transport = {
      submit: async () => ({ jobId: "j-1", executionArn: "arn:x:j-1" }),
      history: async () => all.slice(0, ++looks),
      // Like the API: RUNNING (undefined) while the continuation runs.
      result: async () => (looks >= all.length ? done : undefined),
    };
    const lines: string[] = [];
    const status = await followJob(
      transport,
      { jobId: "j-1", executionArn: "arn:x:j-1" },
      { line: (l) => lines.push(l), signal: new AbortController().signal, pollMs: 1 },
    );
    expect(status).toBe(done);
    expect(lines).toContain("continued in a new execution (history limit): arn:x:j-1-c2");

    const seen: HistoryEvent[] = [];
    looks = 0;
    await runJob(spec, { connection: { transport }, pollMs: 1, onEvent: (e) => seen.push(e) });
    expect(seen).toEqual(all);
  });
});

describe("a job's history read with an execution left out", () => {
  // Three executions as Step Functions writes them: each starts at its own time with an input of
  // its own (the spec, then each continuation's), the first two end by continuing the job.
  const started = (at: string, input: string) =>
    event("ExecutionStarted", { timestamp: new Date(at), executionStartedEventDetails: { input } });
  const continued = (next: string) =>
    event("ExecutionSucceeded", {
      executionSucceededEventDetails: { output: JSON.stringify({ continuedAs: next, jobId: "j-1" }) },
    });
  const continuation = (n: number) =>
    JSON.stringify({ gangwayContinuation: { jobId: "j-1", history: { execution: n - 1 } } });
  const e1 = [
    started("2030-01-01T00:00:00Z", '{"name":"j"}'),
    event("PassStateEntered"),
    continued("arn:x:j-1-c2"),
  ];
  const e2 = [
    started("2030-01-01T01:00:00Z", continuation(2)),
    event("PassStateEntered"),
    event("PassStateExited"),
    event("PassStateEntered"),
    continued("arn:x:j-1-c3"),
  ];
  const e3 = [started("2030-01-01T02:00:00Z", continuation(3)), event("PassStateEntered")];
  const more = [event("PassStateExited"), event("PassStateEntered")];
  const end = event("ExecutionSucceeded", { executionSucceededEventDetails: { output: "{}" } });
  // What the history answers at each look: the second leaves the first execution out.
  const looks = [
    [...e1, ...e2, ...e3],
    [...e2, ...e3, more[0]],
    [...e1, ...e2, ...e3, ...more],
    [...e1, ...e2, ...e3, ...more, end],
  ] as HistoryEvent[][];

  it("hands no event on twice, and each once its place is known", () => {
    const feed = createHistoryFeed();
    const handed = looks.map((l) => feed(l));
    expect(handed[1]).toEqual([more[0]]);
    expect(handed.flat()).toEqual(looks.at(-1));
  });

  it("takes no new execution until the one before it is known to have ended", () => {
    const feed = createHistoryFeed();
    expect(feed([...e1.slice(0, 2)])).toEqual(e1.slice(0, 2));
    // The first execution left out, the second (new) one cannot be placed yet.
    expect(feed([...e2])).toEqual([]);
    expect(feed([...e1, ...e2])).toEqual([...e1.slice(2), ...e2]);
  });

  it("says once that the job continued in a new execution", async () => {
    let n = 0;
    const done = { status: "SUCCEEDED", counters: { attempts: 1 } } as unknown as JobStatus;
    const transport: Pick<Transport, "history" | "result"> = {
      history: async () => looks[Math.min(n++, looks.length - 1)] ?? [],
      result: async () => done,
    };
    const lines: string[] = [];
    const status = await followJob(
      transport,
      { jobId: "j-1", executionArn: "arn:x:j-1" },
      { line: (l) => lines.push(l), signal: new AbortController().signal, pollMs: 1 },
    );
    expect(status).toBe(done);
    expect(lines.filter((l) => l.startsWith("continued in a new execution"))).toEqual([
      "continued in a new execution (history limit): arn:x:j-1-c2",
      "continued in a new execution (history limit): arn:x:j-1-c3",
    ]);
  });
});

describe("a look at a job that fails", () => {
  const done = { status: "SUCCEEDED", counters: { attempts: 1 } } as unknown as JobStatus;
  const busy = () => new GangwayApiError(429, "ThrottlingException", "Rate exceeded");

  it("does not lose the status of a job that ended when the last history read fails", async () => {
    let ended = false;
    const transport: Transport = {
      submit: async () => ({ jobId: "j-1", executionArn: "arn:x:j-1" }),
      history: async () => {
        if (ended) throw busy();
        return [event("ExecutionStarted")];
      },
      result: async () => {
        ended = true;
        return done;
      },
    };
    const seen: HistoryEvent[] = [];
    const status = await runJob(spec, { connection: { transport }, pollMs: 1, onEvent: (e) => seen.push(e) });
    expect(status).toBe(done);
    expect(seen).toEqual([event("ExecutionStarted")]);
  });

  it("is looked at again at the next poll while the service is busy, and given up on after a while", async () => {
    let reads = 0;
    const flaky: Transport = {
      submit: async () => ({ jobId: "j-1", executionArn: "arn:x:j-1" }),
      history: async () => {
        reads++;
        if (reads <= 2) throw busy();
        return [event("ExecutionStarted"), event("ExecutionSucceeded")];
      },
      result: async () => (reads > 2 ? done : undefined),
    };
    expect(await runJob(spec, { connection: { transport: flaky }, pollMs: 1, onEvent: () => {} })).toBe(done);
    reads = 0;
    const job = { jobId: "j-1", executionArn: "arn:x:j-1" };
    const follow = { line: () => {}, signal: new AbortController().signal, pollMs: 1 };
    expect(await followJob(flaky, job, follow)).toBe(done);

    let failed = 0;
    const down: Transport = {
      ...flaky,
      history: async () => {
        failed++;
        throw new GangwayApiError(503, "ServiceUnavailable", "down");
      },
    };
    await expect(followJob(down, job, follow)).rejects.toMatchObject({ status: 503 });
    expect(failed).toBe(MAX_FAILED_POLLS);
    // A refusal is no blip: it ends the follow at once.
    failed = 0;
    const refused: Transport = {
      ...flaky,
      history: async () => {
        failed++;
        throw new GangwayApiError(404, "JobNotFound", "no job j-1");
      },
    };
    await expect(followJob(refused, job, follow)).rejects.toMatchObject({ status: 404 });
    expect(failed).toBe(1);
  });
});
