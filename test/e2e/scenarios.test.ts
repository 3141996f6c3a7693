import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { behaveJob, type JobRun, processesOfJob, startTestStack } from "./harness.js";

// The ancestors' ten test scenarios (FACTS.md), on the local provider: real agents, real
// processes, the real state machine on the embedded engine, events through the Pub/Sub emulator.

const tpu = (type: string, slices: number | number[]) => ({ kind: "tpu", type, slices });
const results = (run: JobRun) =>
  run.job?.status === "SUCCEEDED" ? (run.job.result as unknown[]) : undefined;
const ran: string[] = [];

let t: Awaited<ReturnType<typeof startTestStack>>;
beforeAll(async () => {
  t = await startTestStack("v4-16x2,v4-8x1");
});
afterAll(async () => {
  await t?.close();
});
afterEach(async () => {
  // After every test no workload process of its jobs is alive.
  for (const jobId of ran.splice(0)) expect(await processesOfJob(jobId)).toEqual([]);
});

async function run(spec: unknown, hooks: Parameters<typeof t.runJob>[1] = {}) {
  const r = await t.runJob(spec, hooks);
  ran.push(r.jobId);
  return r;
}

describe("the ancestors' scenarios", () => {
  it("1 single slice, simple run: one result per host", async () => {
    const r = await run(behaveJob("s1", tpu("v4-16", 1)));
    expect(r.status).toBe("SUCCEEDED");
    expect(results(r)).toEqual([
      { slice: 0, host: 0, worker: 0, attempt: 1 },
      { slice: 0, host: 1, worker: 1, attempt: 1 },
    ]);
    expect(r.job?.counters).toEqual({ attempts: 1, preemptions: 0, failures: 0 });
  });

  it("2 single slice, run twice: same result", async () => {
    const a = await run(behaveJob("s2", tpu("v4-8", 1)));
    const b = await run(behaveJob("s2", tpu("v4-8", 1)));
    expect(results(a)).toEqual([{ slice: 0, host: 0, worker: 0, attempt: 1 }]);
    expect(results(b)).toEqual(results(a));
  });

  it("3 single slice fails once, then succeeds with one failure retry", async () => {
    const r = await run(
      behaveJob("s3", tpu("v4-16", 1), ["--fail-on-attempt", "1"], { retry: { maxFailures: 1 } }),
    );
    expect(r.status).toBe("SUCCEEDED");
    expect(r.job?.counters).toEqual({ attempts: 2, preemptions: 0, failures: 1 });
    expect(results(r)?.every((x) => (x as { attempt: number }).attempt === 2)).toBe(true);
  });

  it("4 multi-slice simple run: one result per host, slice then host order", async () => {
    const r = await run(behaveJob("s4", tpu("v4-16", 2)));
    expect(r.status).toBe("SUCCEEDED");
    expect(results(r)?.map((x) => [(x as { slice: number }).slice, (x as { host: number }).host])).toEqual([
      [0, 0],
      [0, 1],
      [1, 0],
      [1, 1],
    ]);
  });

  it("5 variable multi-slice [1, 2]: takes the largest that fits", async () => {
    const r = await run(behaveJob("s5", tpu("v4-16", [1, 2])));
    expect(r.status).toBe("SUCCEEDED");
    expect(results(r)).toHaveLength(4);
  });

  it("6 multi-slice, run twice", async () => {
    const a = await run(behaveJob("s6", tpu("v4-16", 2), [], { flatten: false }));
    const b = await run(behaveJob("s6", tpu("v4-16", 2), [], { flatten: false }));
    expect((results(a) as unknown[][]).map((s) => s.length)).toEqual([2, 2]);
    expect(results(b)).toEqual(results(a));
  });

  it("7 multi-slice, slice 0 fails once then succeeds", async () => {
    const r = await run(
      behaveJob("s7", tpu("v4-16", 2), ["--fail-on-attempt", "1", "--fail-slice", "0"], {
        retry: { maxFailures: 1 },
      }),
    );
    expect(r.status).toBe("SUCCEEDED");
    expect(r.job?.counters).toEqual({ attempts: 2, preemptions: 0, failures: 1 });
  });

  it("8 catches failure: zero retries surfaces the user's own exception", async () => {
    const r = await run(
      behaveJob("s8", tpu("v4-16", 1), ["--fail-on-attempt", "1"], { retry: { maxFailures: 0 } }),
    );
    expect(r.status).toBe("FAILED");
    expect(r.error).toBe("DeliberateFailure");
    expect(r.job).toMatchObject({
      status: "FAILED",
      error: { name: "DeliberateFailure", message: expect.stringContaining("attempt 1") },
    });
  });

  it("9 handles preemption: preempted until call 4 with 2 retries → preempted too many times", async () => {
    const r = await run(
      behaveJob("s9a", tpu("v4-16", 1), ["--sleep", "20000"], { retry: { maxPreemptions: 2 } }),
      {
        onRunning: async (_attempt, slices) => {
          await t.stack.provider.preemptSlice(slices[0] ?? "");
        },
      },
    );
    expect(r.status).toBe("FAILED");
    expect(r.error).toBe("PreemptedTooManyTimes");
    expect(r.job).toMatchObject({ status: "PREEMPTED", counters: { attempts: 3, preemptions: 3 } });
    expect((r.job as { error: { message: string } }).error.message).toMatch(/^preempted too many times/);
  });

  it("9 handles preemption: preempted until call 2 → succeeds", async () => {
    const r = await run(
      behaveJob("s9b", tpu("v4-16", 1), ["--sleep", "1500"], { retry: { maxPreemptions: 2 } }),
      {
        onRunning: async (attempt, slices) => {
          if (attempt === 1) await t.stack.provider.preemptSlice(slices[0] ?? "");
        },
      },
    );
    expect(r.status).toBe("SUCCEEDED");
    expect(r.job?.counters).toEqual({ attempts: 2, preemptions: 1, failures: 0 });
  });

  it("10 one slice always fails: the failure surfaces after the failure budget", async () => {
    const r = await run(
      behaveJob("s10", tpu("v4-16", 2), ["--always-fail-slice", "1"], { retry: { maxFailures: 2 } }),
    );
    expect(r.status).toBe("FAILED");
    expect(r.job).toMatchObject({
      status: "FAILED",
      counters: { attempts: 3, failures: 3 },
      error: { name: "DeliberateFailure" },
    });
    expect((r.job as { error: { message: string } }).error.message).toContain("attempt 1");
  });
});
