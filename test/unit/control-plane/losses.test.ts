import { describe, expect, it } from "vitest";
import { fakeWorld } from "./fakes.js";
import { exitEvent, launched } from "./harness.js";

/** Run attempt 1 to a failure of slice 0's head (its collective broke), as the token brings it back. */
async function failedOnSlice0(world: ReturnType<typeof fakeWorld>) {
  const { s, state } = await launched(world, { retry: { maxPreemptions: 2, maxFailures: 0 } });
  await s.await({ token: "tok-1", state });
  await s.ingest.hostEvent(exitEvent(state, 0, 0, { exitCode: 1 }));
  const failure = world.sent.find((x) => x.kind === "fail");
  expect(failure).toMatchObject({ error: "WorkloadFailed" });
  const problem = { Error: failure?.error ?? "", Cause: failure?.cause };
  return { s, state: { ...state, problem } };
}

describe("a failure in the wake of a lost host counts as a preemption", () => {
  it("when another slice's hosts no longer answer", async () => {
    const world = fakeWorld();
    const { s, state } = await failedOnSlice0(world);
    for (const h of [0, 1]) world.agentOf(1, h).unreachable = true;
    const checked = await s.check(state);
    expect(checked.decision).toMatchObject({ action: "retry", reason: "preempted" });
    expect(checked.retry).toMatchObject({ attempts: 1, preemptions: 1, failures: 0 });
  });

  it("when a host says its VM is being preempted", async () => {
    const world = fakeWorld();
    const { s, state } = await failedOnSlice0(world);
    world.agentOf(1, 1).preempted = true;
    const checked = await s.check(state);
    expect(checked.retry).toMatchObject({ preemptions: 1, failures: 0 });
  });

  it("when a notice for another slice comes after the failure ended the attempt", async () => {
    // The slice's agents do not know yet (GCE warns 30 s ahead); the notice is all there is.
    const world = fakeWorld();
    const { s, state } = await failedOnSlice0(world);
    expect(await s.ingest.notice({ slice: "v4-16-1", reason: "GCE preemption" })).toMatchObject({
      action: "recorded",
    });

    const checked = await s.check(state);
    await s.teardown(checked);

    expect(checked.decision).toMatchObject({ action: "retry", reason: "preempted" });
    expect(checked.retry).toMatchObject({ preemptions: 1, failures: 0 });
    // And the slice goes back to be replaced, rather than kept for the next attempt.
    expect(world.released).toEqual([[["v4-16-1"], "preempted"]]);
  });

  it("but stays a failure when every host answers and none is preempted", async () => {
    const world = fakeWorld();
    const { s, state } = await failedOnSlice0(world);
    for (const a of world.agents.values()) a.calls.length = 0;
    const checked = await s.check(state);
    expect(checked.decision).toMatchObject({ action: "stop", status: "FAILED" });
    expect(checked.retry).toMatchObject({ preemptions: 0, failures: 1 });
    for (const h of [0, 1]) expect(world.agentOf(1, h).calls).toContain("status");
  });
});

describe("teardown gives back to the provider only what was preempted", () => {
  it("keeps a slice whose host let its lease lapse, or was leased by another job meanwhile", async () => {
    const world = fakeWorld("v4-16x3");
    const { s, state } = await launched(world);
    await s.await({ token: "tok-1", state });
    // Slice 1's head freed itself (lease lapsed unrenewed) and another job leased it since.
    await s.ingest.hostEvent({ ...exitEvent(state, 1, 0), kind: "lost", eventId: "lost-1-0" });
    const head = world.agentOf(1, 0);
    head.run_ = null;
    head.lease = { leaseId: "other#1", jobId: "other", epoch: 1, expiresAtMs: Date.now() + 60_000 };
    const failure = world.sent.find((x) => x.kind === "fail");
    expect(failure).toMatchObject({ error: "LeaseExpired" });
    const checked = await s.check({ ...state, problem: { Error: "LeaseExpired", Cause: failure?.cause } });
    expect(checked.decision).toMatchObject({ action: "retry", reason: "preempted" });
    const torn = await s.teardown(checked);
    // Nothing was preempted: no slice goes back to be deleted, the other job keeps its host.
    expect(world.released).toEqual([]);
    expect(head.lease).toMatchObject({ jobId: "other" });
    // Slice 0 restarts in place; slice 1 is not kept (one host is gone), its other host freed.
    expect(torn.kept).toEqual({ epoch: 1, units: ["v4-16-0"] });
    expect(world.agentOf(1, 1).lease).toBeNull();
  });

  it("still gives back a slice whose hosts do not answer", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world);
    for (const h of [0, 1]) world.agentOf(1, h).unreachable = true;
    const checked = await s.check({
      ...state,
      problem: { Error: "HostLost", Cause: JSON.stringify({ name: "HostLost", message: "silent" }) },
    });
    await s.teardown(checked);
    expect(world.released).toEqual([[["v4-16-1"], "preempted"]]);
  });
});

describe("a notice that comes between attempts", () => {
  /** Attempt 1 failed (slice 0's head exited 1) and was torn down, both slices kept for attempt 2. */
  async function betweenAttempts(world: ReturnType<typeof fakeWorld>) {
    const { s, state } = await launched(world, { retry: { maxFailures: 2 } });
    await s.await({ token: "tok-1", state });
    await s.ingest.hostEvent(exitEvent(state, 0, 0, { exitCode: 1 }));
    const failure = world.sent.find((x) => x.kind === "fail");
    const checked = await s.check({
      ...state,
      problem: { Error: failure?.error ?? "", Cause: failure?.cause },
    });
    const torn = await s.teardown(checked);
    expect(torn.kept?.units).toEqual(["v4-16-0", "v4-16-1"]);
    return { s, torn };
  }

  it.each([
    ["before the next attempt is leased", false],
    ["while the next attempt is being placed", true],
  ])("%s keeps the next attempt off the slice, which goes back as preempted", async (_when, scaledFirst) => {
    const world = fakeWorld();
    const { s, torn } = await betweenAttempts(world);
    let next = scaledFirst ? await s.scale(torn) : torn;
    expect(await s.ingest.notice({ slice: "v4-16-1", reason: "GCE preemption" })).toMatchObject({
      action: "recorded",
    });
    if (!scaledFirst) next = await s.scale(next);

    const problem = await s.prepare(next).catch((e: Error) => e);
    expect(problem).toMatchObject({ name: "Preempted", details: { slice: "v4-16-1" } });
    const serialized = {
      Error: "Preempted",
      Cause: JSON.stringify({
        name: "Preempted",
        message: (problem as Error).message,
        details: { slice: "v4-16-1" },
      }),
    };
    const checked = await s.check({ ...next, problem: serialized });
    const tornAgain = await s.teardown(checked);

    expect(checked.retry).toMatchObject({ preemptions: 1, failures: 1 });
    expect(world.released).toEqual([[["v4-16-1"], "preempted"]]);
    // Acted on: the attempt after that is placed as usual.
    const again = await s.prepare(await s.scale(tornAgain));
    expect(again.placement).toBeDefined();
  });
});
