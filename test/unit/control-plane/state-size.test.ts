import { describe, expect, it } from "vitest";
import type { HostEvent } from "../../../core/host-event.js";
import { jsonBytes, MAX_ERROR_BYTES, type SerializedError } from "../../../core/serialized-error.js";
import { createAwaitAttempt } from "../../../functions/await-attempt/index.js";
import { createCheckResults } from "../../../functions/check-results/index.js";
import { createIngest } from "../../../functions/ingest/events.js";
import { createInit } from "../../../functions/init/index.js";
import { createLaunchHosts } from "../../../functions/launch-hosts/index.js";
import { createPreparePlacement } from "../../../functions/prepare-placement/index.js";
import { createScaleSlices } from "../../../functions/scale-slices/index.js";
import type { ExecutionState } from "../../../functions/state.js";
import { createTeardown } from "../../../functions/teardown/index.js";
import { fakeWorld } from "./fakes.js";
import { exitEvent, hugeWorkloadError, launched } from "./harness.js";

// Step Functions refuses state over 256 KiB. With 1,024 hosts (256 slices of v4-32) every
// state the machine carries stays below it: placement is compact, and per-host detail and
// large results live in the results store.
const LIMIT = 256 * 1024;
const size = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

const bigExecution = {
  Id: "arn:aws:states:us-east-1:000000000000:execution:gangway-multislice:big",
  Name: "big",
};
const bigSpec = (overrides: Record<string, unknown> = {}) => ({
  name: "big",
  accelerator: { kind: "tpu", type: "v4-32", slices: 256 },
  workload: { command: ["python3", "train.py"] },
  ...overrides,
});

/** Every step of a 1,024-host world, each state it passes recorded by step and attempt. */
function bigSteps() {
  const world = fakeWorld("v4-32x256");
  const d = world.deps;
  const sizes: Record<string, number> = {};
  const seen = (step: string, state: ExecutionState) => {
    sizes[`${step}#${state.attempt}`] = size(state);
    return state;
  };
  const launch = async (state: ExecutionState) => {
    state = seen("scale", await createScaleSlices(d)(state));
    state = seen("prepare", await createPreparePlacement(d)(state));
    return seen("launch", await createLaunchHosts(d)(state));
  };
  const hostEvent = (state: ExecutionState, slice: number, host: number, extra: Partial<HostEvent>) => {
    const h = state.placement?.slices[slice]?.hosts[host];
    return createIngest(d).hostEvent({
      version: 1,
      kind: "exited",
      eventId: `${state.attempt}-${slice}-${host}`,
      at: 1,
      agent: h?.agent ?? "",
      address: h?.address ?? "",
      jobId: "big",
      attempt: state.attempt,
      sliceIndex: slice,
      hostIndex: host,
      exitCode: 0,
      ...extra,
    });
  };
  const under = () => {
    for (const [step, bytes] of Object.entries(sizes)) expect(bytes, step).toBeLessThan(LIMIT);
  };
  return { world, d, sizes, seen, launch, hostEvent, under };
}

describe("state size at 1,024 hosts", () => {
  it("stays under 256 KiB through every step, large results travel as a reference", async () => {
    const { world, d, seen, launch, hostEvent, under } = bigSteps();
    let state = await launch(await createInit(d)({ input: bigSpec(), execution: bigExecution }));
    expect(state.placement?.slices.flatMap((s) => s.hosts)).toHaveLength(1024);
    await createAwaitAttempt(d)({ token: "t", state });
    for (const s of state.placement?.slices ?? [])
      for (const h of s.hosts)
        await hostEvent(state, s.index, h.index, {
          result: { loss: 0.5, host: h.index, slice: s.index, note: "x".repeat(200) },
        });
    expect(world.sent.at(-1)).toMatchObject({ kind: "succeed" });
    state = seen("check", await createCheckResults(d)({ ...state, completion: { outcome: "succeeded" } }));
    state = seen("teardown", await createTeardown(d)(state));
    under();
    const status = state.final?.status as {
      result: { resultRef?: { store: string; bytes: number } };
      hosts?: unknown[];
    };
    expect(status.result.resultRef?.store).toBe("jobs/big/results.json");
    expect(status.hosts).toBeUndefined();
    const stored = JSON.parse((await d.store.get("jobs/big/results.json")) ?? "[]") as unknown[];
    expect(stored).toHaveLength(1024);
    expect(size(state.final?.cause ?? "")).toBeLessThanOrEqual(32_768 + 2);
  });

  it("measures results in bytes: text of many-byte characters goes by reference too", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world);
    await s.await({ token: "t", state });
    // 20,000 characters of three bytes each per host: 80,000 characters, 240,000 bytes in all.
    const text = "€".repeat(20_000);
    for (const [sl, h] of [
      [0, 0],
      [0, 1],
      [1, 0],
      [1, 1],
    ] as const)
      await s.ingest.hostEvent(exitEvent(state, sl, h, { result: { text } }));
    const checked = await s.check({ ...state, completion: { outcome: "succeeded" } });
    const status = checked.final?.status as { result?: { resultRef?: { bytes: number } } } | undefined;
    expect(status?.result?.resultRef?.bytes).toBeGreaterThan(240_000);
    expect(size(checked)).toBeLessThan(LIMIT);
  });

  it("decides inline or reference on the whole output: ~112 bytes of result per host", async () => {
    const { world, d, seen, launch, hostEvent, under } = bigSteps();
    let state = await launch(await createInit(d)({ input: bigSpec(), execution: bigExecution }));
    await createAwaitAttempt(d)({ token: "t", state });
    const resultOf = (slice: number, host: number) => ({ loss: 0.5, slice, host, note: "x".repeat(64) });
    expect(size(resultOf(255, 3))).toBeGreaterThanOrEqual(100);
    for (const sl of state.placement?.slices ?? [])
      for (const h of sl.hosts)
        await hostEvent(state, sl.index, h.index, { result: resultOf(sl.index, h.index) });
    expect(world.sent.at(-1)).toMatchObject({ kind: "succeed" });
    const expected = (state.placement?.slices ?? []).flatMap((sl) =>
      sl.hosts.map((h) => resultOf(sl.index, h.index)),
    );
    expect(expected).toHaveLength(1024);
    state = seen("check", await createCheckResults(d)({ ...state, completion: { outcome: "succeeded" } }));
    const status = state.final?.status as { result: unknown };
    state = seen("teardown", await createTeardown(d)(state));
    under();
    // Under 128 KiB alone, the results would still have taken the output over 256 KiB.
    const ref = (status.result as { resultRef?: { store: string } }).resultRef;
    const results = ref ? (JSON.parse((await d.store.get(ref.store)) ?? "null") as unknown) : status.result;
    expect(results).toEqual(expected);
  });

  const hugeError = hugeWorkloadError;

  it.each([
    { ends: ["preempted", "failed", "failed"], status: "FAILED" },
    { ends: ["failed", "preempted", "preempted"], status: "PREEMPTED" },
  ])(
    "keeps a ~200 KB workload error short in every state over retries ($status)",
    async ({ ends, status }) => {
      expect(size(hugeError)).toBeGreaterThan(200_000);
      const { world, d, seen, launch, hostEvent, under } = bigSteps();
      const spec = bigSpec({ retry: { maxPreemptions: 1, maxFailures: 1 } });
      let state = await createInit(d)({ input: spec, execution: bigExecution });
      for (const end of ends) {
        state = await launch(state);
        await createAwaitAttempt(d)({ token: `t${state.attempt}`, state });
        // The metadata endpoint says the failing host's VM is being preempted: a preemption.
        await hostEvent(state, 3, 1, {
          exitCode: 1,
          error: hugeError,
          metadataPreempted: end === "preempted",
        });
        const failure = world.sent.at(-1);
        expect(failure).toMatchObject({ kind: "fail", error: "ValueError" });
        // The Catch puts the token's error and cause in the state.
        state = seen("caught", { ...state, problem: { Error: failure?.error ?? "", Cause: failure?.cause } });
        state = seen("check", await createCheckResults(d)(state));
        state = seen("teardown", await createTeardown(d)(state));
      }
      under();
      expect(state.decision).toMatchObject({ action: "stop", status });
      expect(jsonBytes(state.retry.lastPreemption)).toBeLessThanOrEqual(MAX_ERROR_BYTES);
      expect(jsonBytes(state.retry.firstFailure?.error)).toBeLessThanOrEqual(MAX_ERROR_BYTES);
      const final = state.final?.status as { status: string; error: SerializedError };
      expect(final.status).toBe(status);
      expect(jsonBytes(final.error)).toBeLessThanOrEqual(MAX_ERROR_BYTES);
      // The workload's error, named and starting with its message (PREEMPTED wraps it as the cause).
      const shown = status === "FAILED" ? final.error : final.error.cause;
      expect(shown?.name).toBe("ValueError");
      expect(shown?.message.startsWith("loss went NaN at step 1234: mmm")).toBe(true);
      expect(shown?.message.length).toBeLessThan(hugeError.message.length);
      expect(shown?.details).toMatchObject({ step: 1234, exitCode: 1 });
      expect(state.final?.cause.length).toBeLessThanOrEqual(32_768);
    },
  );
});
