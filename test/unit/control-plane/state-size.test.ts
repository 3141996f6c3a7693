import { describe, expect, it } from "vitest";
import type { HostEvent } from "../../../core/host-event.js";
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
import { exitEvent, launched } from "./harness.js";

// Step Functions refuses state over 256 KiB. With 1,024 hosts (256 slices of v4-32) every
// state the machine carries stays below it: placement is compact, and per-host detail and
// large results live in the results store.
const LIMIT = 256 * 1024;
const size = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

describe("state size at 1,024 hosts", () => {
  it("stays under 256 KiB through every step, large results travel as a reference", async () => {
    const world = fakeWorld("v4-32x256");
    const d = world.deps;
    const execution = {
      Id: "arn:aws:states:us-east-1:000000000000:execution:gangway-multislice:big",
      Name: "big",
    };
    const spec = {
      name: "big",
      accelerator: { kind: "tpu", type: "v4-32", slices: 256 },
      workload: { command: ["python3", "train.py"] },
    };
    const sizes: Record<string, number> = {};
    let state: ExecutionState = await createInit(d)({ input: spec, execution });
    state = await createScaleSlices(d)(state);
    sizes.scale = size(state);
    state = await createPreparePlacement(d)(state);
    sizes.prepare = size(state);
    state = await createLaunchHosts(d)(state);
    sizes.launch = size(state);
    expect(state.placement?.slices.flatMap((s) => s.hosts)).toHaveLength(1024);
    await createAwaitAttempt(d)({ token: "t", state });
    const ingest = createIngest(d);
    for (const s of state.placement?.slices ?? []) {
      for (const h of s.hosts) {
        const event: HostEvent = {
          version: 1,
          kind: "exited",
          eventId: `${s.index}-${h.index}`,
          at: 1,
          agent: h.agent ?? "",
          address: h.address,
          jobId: "big",
          attempt: 1,
          sliceIndex: s.index,
          hostIndex: h.index,
          exitCode: 0,
          result: { loss: 0.5, host: h.index, slice: s.index, note: "x".repeat(200) },
        };
        await ingest.hostEvent(event);
      }
    }
    expect(world.sent.at(-1)).toMatchObject({ kind: "succeed" });
    state = await createCheckResults(d)({ ...state, completion: { outcome: "succeeded" } });
    sizes.check = size(state);
    state = await createTeardown(d)(state);
    sizes.teardown = size(state);
    for (const [step, bytes] of Object.entries(sizes)) expect(bytes, step).toBeLessThan(LIMIT);
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
    // 12,000 characters of three bytes each per host: 48,000 characters, 144,000 bytes in all.
    const text = "€".repeat(12_000);
    for (const [sl, h] of [
      [0, 0],
      [0, 1],
      [1, 0],
      [1, 1],
    ] as const)
      await s.ingest.hostEvent(exitEvent(state, sl, h, { result: { text } }));
    const checked = await s.check({ ...state, completion: { outcome: "succeeded" } });
    const status = checked.final?.status as { result?: { resultRef?: { bytes: number } } } | undefined;
    expect(status?.result?.resultRef?.bytes).toBeGreaterThan(144_000);
    expect(size(checked)).toBeLessThan(LIMIT);
  });
});
