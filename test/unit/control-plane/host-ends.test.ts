import { describe, expect, it } from "vitest";
import { attemptStore } from "../../../functions/attempts.js";
import { fakeWorld } from "./fakes.js";
import { exitEvent, launched } from "./harness.js";

type Launched = Awaited<ReturnType<typeof launched>>;

/** Hosts (`"slice-host"`) of the 2 × 2 attempt exit 0, one after the other. */
async function exit0({ s, state }: Launched, hosts: readonly string[]) {
  for (const key of hosts) {
    const [slice, host] = key.split("-").map(Number);
    await s.ingest.hostEvent(exitEvent(state, slice ?? 0, host ?? 0));
  }
}

/** Every host of the attempt exits 0 (the last as `extra` says), as the token brings it back. */
async function finished(world: ReturnType<typeof fakeWorld>, extra: Parameters<typeof exitEvent>[3] = {}) {
  const run = await launched(world, { retry: { maxPreemptions: 2, maxFailures: 0 } });
  await run.s.await({ token: "tok-1", state: run.state });
  await exit0(run, ["0-0", "0-1", "1-0"]);
  await run.s.ingest.hostEvent(exitEvent(run.state, 1, 1, extra));
  return run;
}

describe("a host's end", () => {
  it("fails the attempt when it exited 0 without the result the job asked for", async () => {
    const world = fakeWorld();
    const tooLarge = { name: "ResultTooLarge", message: "result file is 5000000 bytes, more than 4194304" };
    const { s, state } = await finished(world, { result: undefined, error: tooLarge });
    const failure = world.sent.find((x) => x.kind === "fail");
    expect(failure).toMatchObject({ error: "ResultTooLarge" });
    const checked = await s.check({ ...state, problem: { Error: "ResultTooLarge", Cause: failure?.cause } });
    expect(checked.decision).toMatchObject({ action: "stop", status: "FAILED" });
    expect(JSON.parse(checked.final?.cause ?? "")).toMatchObject({
      error: { name: "ResultTooLarge", details: { exitCode: 0, slice: "v4-16-1", host: 1 } },
    });
  });

  it("keeps a success whose cancel came after every host had finished", async () => {
    const world = fakeWorld();
    const { s, state } = await finished(world);
    expect(world.sent).toMatchObject([{ kind: "succeed" }]);
    await attemptStore(world.deps.store).requestCancel("train-1", "too late", 0);
    const checked = await s.check({ ...state, completion: { outcome: "succeeded" } });
    expect(checked.decision).toMatchObject({ action: "stop", status: "SUCCEEDED" });
    expect(checked.final?.status).toMatchObject({ status: "SUCCEEDED", result: expect.any(Array) });
  });

  it("stays the exit it was when a preemption of its host comes after", async () => {
    const world = fakeWorld();
    const { s, state } = await finished(world);
    expect(world.sent).toMatchObject([{ kind: "succeed" }]);
    // Host 0 of slice 0 is reclaimed after it finished, before CheckResults reads the ends.
    await s.ingest.hostEvent({ ...exitEvent(state, 0, 0), kind: "preempted", eventId: "late" });
    const checked = await s.check({ ...state, completion: { outcome: "succeeded" } });
    expect(checked.decision).toMatchObject({ action: "stop", status: "SUCCEEDED" });
    expect(checked.final?.status).toMatchObject({
      status: "SUCCEEDED",
      result: [
        { slice: 0, host: 0 },
        { slice: 0, host: 1 },
        { slice: 1, host: 0 },
        { slice: 1, host: 1 },
      ],
    });
  });

  it("turns a failed exit into a preemption when its host's preemption follows", async () => {
    const world = fakeWorld();
    const { s, state } = await finished(world, { exitCode: 1 });
    const failure = world.sent.find((x) => x.kind === "fail");
    await s.ingest.hostEvent({ ...exitEvent(state, 1, 1), kind: "preempted", eventId: "after" });
    const checked = await s.check({
      ...state,
      problem: { Error: failure?.error ?? "", Cause: failure?.cause },
    });
    expect(checked.decision).toMatchObject({ action: "retry", reason: "preempted" });
    expect(checked.retry).toMatchObject({ preemptions: 1, failures: 0 });
  });

  it("repeated while the attempt waits for the others, keeps the host's lease; not once it is decided", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world);
    await s.await({ token: "tok-1", state });
    const first = world.agentOf(0, 0);
    await s.ingest.hostEvent(exitEvent(state, 0, 0));
    first.calls.length = 0;
    // The agent repeats the end at each beat while its lease holds.
    await s.ingest.hostEvent(exitEvent(state, 0, 0, { eventId: "again-1" }));
    expect(first.calls).toEqual(["renewLease"]);
    await exit0({ s, state }, ["0-1", "1-0", "1-1"]);
    expect(world.sent).toMatchObject([{ kind: "succeed" }]);
    first.calls.length = 0;
    await s.ingest.hostEvent(exitEvent(state, 0, 0, { eventId: "again-2" }));
    expect(first.calls).toEqual([]);
    expect(world.sent).toHaveLength(1);
  });
});
