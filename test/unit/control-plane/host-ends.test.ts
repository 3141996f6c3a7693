import { describe, expect, it } from "vitest";
import type { HostEvent } from "../../../core/host-event.js";
import { attemptStore, keys } from "../../../functions/attempts.js";
import type { ResultsStore } from "../../../functions/ports.js";
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

describe("a preemption of hosts that had finished", () => {
  const resultRef = { agent: "x", jobId: "train-1", attempt: 1, bytes: 10 };

  it("does not end the attempt when their results are held here", async () => {
    const world = fakeWorld();
    const run = await launched(world);
    const { s, state } = run;
    await s.await({ token: "tok-1", state });
    await exit0(run, ["0-0", "0-1"]);
    // Slice 0 finished early; its VMs are reclaimed while slice 1 still runs.
    const preempted: HostEvent = { ...exitEvent(state, 0, 0), kind: "preempted", eventId: "p-0-0" };
    expect(await s.ingest.hostEvent(preempted)).toMatchObject({ action: "recorded" });
    expect(await s.ingest.notice({ slice: "v4-16-0" })).toMatchObject({ action: "ignored" });
    expect(await s.ingest.notice({ address: preempted.address, attempt: 1 })).toMatchObject({
      action: "ignored",
    });
    expect(world.sent).toEqual([]);
    await exit0(run, ["1-0", "1-1"]);
    expect(world.sent).toMatchObject([{ kind: "succeed", token: "tok-1" }]);
    const checked = await s.check({ ...state, completion: { outcome: "succeeded" } });
    expect(checked.decision).toMatchObject({ action: "stop", status: "SUCCEEDED" });
    expect(checked.final?.status).toMatchObject({ result: expect.arrayContaining([{ slice: 0, host: 0 }]) });
  });

  it("nor when such a host lets its lease lapse afterwards", async () => {
    const world = fakeWorld();
    const run = await launched(world);
    const { s, state } = run;
    await s.await({ token: "tok-1", state });
    await exit0(run, ["0-0"]);
    const lost: HostEvent = { ...exitEvent(state, 0, 0), kind: "lost", eventId: "l-0-0" };
    expect(await s.ingest.hostEvent(lost)).toMatchObject({ action: "recorded" });
    expect(world.sent).toEqual([]);
  });

  it("ends it when a result is still on a preempted host, or a host had not finished", async () => {
    for (const notice of [false, true]) {
      const world = fakeWorld();
      const { s, state } = await launched(world);
      await s.await({ token: "tok-1", state });
      await s.ingest.hostEvent(exitEvent(state, 0, 0, { result: undefined, resultRef }));
      await s.ingest.hostEvent(exitEvent(state, 0, 1));
      const decided = notice
        ? await s.ingest.notice({ slice: "v4-16-0" })
        : await s.ingest.hostEvent({ ...exitEvent(state, 0, 0), kind: "preempted", eventId: "p-0-0" });
      expect(decided).toMatchObject({ action: "decided", outcome: "Preempted" });
    }
    const world = fakeWorld();
    const { s, state } = await launched(world);
    await s.await({ token: "tok-1", state });
    await s.ingest.hostEvent(exitEvent(state, 0, 0));
    expect(await s.ingest.notice({ slice: "v4-16-0" })).toMatchObject({
      action: "decided",
      outcome: "Preempted",
    });
  });
});

/**
 * A store that holds the first two operations on `key`, once armed, until both have come, then
 * runs them in the order they came: two events of one host that read (or write) its end at once.
 */
function racingStore(real: ResultsStore) {
  let key: string | undefined;
  const held: Array<() => void> = [];
  const gate = async (k: string) => {
    if (k !== key) return;
    if (held.length === 1) key = undefined;
    await new Promise<void>((resolve) => {
      held.push(resolve);
      if (held.length === 2) for (const r of held) r();
    });
  };
  const store: ResultsStore = {
    get: async (k) => {
      await gate(k);
      return real.get(k);
    },
    put: async (k, v) => {
      await gate(k);
      return real.put(k, v);
    },
    create: async (k, v) => {
      await gate(k);
      return real.create(k, v);
    },
    list: (p) => real.list(p),
    delete: (k) => real.delete(k),
  };
  return {
    store,
    arm(k: string) {
      key = k;
      held.length = 0;
    },
  };
}

describe("an exit and a preemption of one host pushed at once", () => {
  it.each([
    ["the preemption", "the exit"],
    ["the exit", "the preemption"],
  ])("record the failed exit as preempted when %s comes first", async (first) => {
    const world = fakeWorld();
    const racing = racingStore(world.deps.store);
    world.deps.store = racing.store;
    const { s, state } = await launched(world);
    await s.await({ token: "tok-1", state });
    const exit = exitEvent(state, 1, 0, { exitCode: 137, signal: null });
    const preempted: HostEvent = { ...exitEvent(state, 1, 0), kind: "preempted", eventId: "p-1-0" };
    const events = first === "the exit" ? [exit, preempted] : [preempted, exit];
    racing.arm(keys.host(state.jobId, state.attempt, 1, 0));
    await Promise.all(events.map((e) => s.ingest.hostEvent(e)));
    const end = await attemptStore(world.deps.store).hostEnd(state.jobId, state.attempt, 1, 0);
    expect(end?.metadataPreempted).toBe(true);
    expect(world.sent.filter((x) => x.kind === "fail")).toHaveLength(1);
  });
});
