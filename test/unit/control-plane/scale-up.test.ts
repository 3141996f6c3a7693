import { describe, expect, it } from "vitest";
import type { ClusterSlice } from "../../../core/cluster-spec.js";
import { largerSliceCounts } from "../../../core/scale-up.js";
import { attemptStore } from "../../../functions/attempts.js";
import { createCheckScaleUp } from "../../../functions/check-scale-up/index.js";
import type { ExecutionState } from "../../../functions/state.js";
import { fakeWorld } from "./fakes.js";
import { launched } from "./harness.js";

// Growing a flexible job while it runs (FACTS.md: "Levanter later scales up a running job when
// more slices appear"): AwaitAttempt's timeout brings the machine to CheckScaleUp when a look is due.

const HOUR = 3600 * 1000;
const flexible = (slices: number[], extra: Record<string, unknown> = {}) => ({
  accelerator: { kind: "tpu", type: "v4-16", slices },
  ...extra,
});
const timedOut = { Error: "States.Timeout", Cause: "AwaitAttempt timed out" };

/** A world of `total` slices of which only the first `visible` are listed at launch. */
async function runningOn(visible: number, total: number, job: Record<string, unknown> = flexible([2, 1])) {
  const world = fakeWorld(`v4-16x${total}`);
  const all = world.cluster;
  world.setCluster(all.slice(0, visible));
  const { s, state } = await launched(world, job);
  world.requested.length = 0;
  const check = createCheckScaleUp(world.deps);
  const appear = (n: number) => world.setCluster(all.slice(0, n));
  const leaseOf = (slice: ClusterSlice | undefined) =>
    slice?.hosts.map((h) => world.agents.get(h.agent ?? "")?.lease?.leaseId ?? null);
  return { world, s, state, check, appear, all, leaseOf };
}

describe("the attempt's clock (LaunchHosts)", () => {
  it("a flexible job below its largest count looks for more after scaleUp.afterSeconds", async () => {
    const { state, world } = await runningOn(1, 2);
    expect(state.scale?.slices).toHaveLength(1);
    expect(state.running).toEqual({
      launchedAt: world.deps.clock.now(),
      scaleUpAt: world.deps.clock.now() + 12 * HOUR,
      checks: 0,
      resume: false,
    });
    expect(state.awaitTimeoutSeconds).toBe(12 * 3600);
    // What a definition from before CheckScaleUp reads stays the attempt's own limit (none).
    expect(state.attemptTimeoutSeconds).toBe(99_999_999);
  });

  it("an attempt limit shorter than the look is AwaitAttempt's timeout", async () => {
    const { state } = await runningOn(1, 2, flexible([2, 1], { timeouts: { attemptSeconds: 7200 } }));
    expect(state.awaitTimeoutSeconds).toBe(7200);
  });

  it("an exact count, a job at its largest count, or scaleUp disabled never looks", async () => {
    const cases: Array<[Record<string, unknown>, number]> = [
      [flexible([2, 1]), 2],
      [{ accelerator: { kind: "tpu", type: "v4-16", slices: 1 } }, 1],
      [flexible([2, 1], { scaleUp: { enabled: false } }), 1],
    ];
    for (const [job, visible] of cases) {
      const { state } = await runningOn(visible, 2, job);
      expect(state.running?.scaleUpAt).toBeUndefined();
      expect(state.awaitTimeoutSeconds).toBe(99_999_999);
    }
  });

  it("largerSliceCounts: the counts a job may grow to, smallest first", () => {
    const job = (slices: number | number[], enabled = true) =>
      ({
        accelerator: { kind: "tpu", type: "v4-16", slices, preemptible: false },
        scaleUp: { enabled, afterSeconds: 1, checkSeconds: 60 },
      }) as Parameters<typeof largerSliceCounts>[0];
    expect(largerSliceCounts(job([4, 2, 1]), 1)).toEqual([2, 4]);
    expect(largerSliceCounts(job([4, 2, 1]), 4)).toEqual([]);
    expect(largerSliceCounts(job(4), 2)).toEqual([]);
    expect(largerSliceCounts(job([4, 2], false), 2)).toEqual([]);
  });
});

describe("CheckScaleUp", () => {
  it("woken before the look is due, waits on for the rest of the time", async () => {
    const { state, check, world } = await runningOn(1, 2);
    world.advance(2 * HOUR);
    const next = await check({ ...state, problem: timedOut });
    expect(next.problem).toBeUndefined();
    expect(next.running?.resume).toBe(true);
    expect(next.awaitTimeoutSeconds).toBe(10 * 3600);
    expect(next.running?.lastLook).toBeUndefined();
  });

  it("with no more slices to be had, asks the provider and looks again checkSeconds later", async () => {
    const { state, check, world, all, leaseOf } = await runningOn(1, 2);
    // The second slice exists but another job holds it.
    world.setCluster(all);
    const other = all[1]?.hosts.map((h) => world.agents.get(h.agent ?? ""));
    for (const a of other ?? [])
      await a?.acquireLease({ leaseId: "other#1", jobId: "other", epoch: 1, ttlMs: 60_000 });
    world.advance(12 * HOUR);
    const next = await check({ ...state, problem: timedOut });
    expect(next.running).toMatchObject({
      resume: true,
      checks: 1,
      scaleUpAt: world.deps.clock.now() + 3 * HOUR,
    });
    expect(next.awaitTimeoutSeconds).toBe(3 * 3600);
    expect(next.running?.lastLook).toBe("none to be had yet; the autoscaler asked");
    expect(next.problem).toBeUndefined();
    expect(next.grown).toBeUndefined();
    expect(world.requested).toEqual([["v4-16", 1]]);
    expect(leaseOf(all[1])).toEqual(["other#1", "other#1"]);
  });

  it("grows when more slices can be had: leases them for the next attempt, raising no counter", async () => {
    const { state, check, world, appear, all, leaseOf, s } = await runningOn(1, 2);
    appear(2);
    world.advance(12 * HOUR);
    const ended = await check({ ...state, problem: timedOut });
    expect(ended.problem?.Error).toBe("ScaleUp");
    expect(ended.running?.resume).toBe(false);
    expect(ended.grown).toEqual({ epoch: 2, units: ["v4-16-1"] });
    expect(leaseOf(all[1])).toEqual(["train-1#2", "train-1#2"]);
    // Leased to outlast the teardown's SIGTERM grace (30 s) beyond the usual 180 s.
    const expires = world.agents.get(all[1]?.hosts[0]?.agent ?? "")?.lease?.expiresAtMs ?? 0;
    expect(expires - Date.now()).toBeGreaterThan(200_000);

    const checked = await s.check(ended);
    expect(checked.decision).toMatchObject({ action: "retry", reason: "scaled", waitSeconds: 0 });
    expect(checked.retry).toMatchObject({ attempts: 1, preemptions: 0, failures: 0, scaledUp: 1 });
    const torn = await s.teardown(checked);
    // The slice it ran on is kept for an in-place restart; the new one stays leased for it.
    expect(torn.kept).toEqual({ epoch: 1, units: ["v4-16-0"] });
    expect(torn.grown).toEqual({ epoch: 2, units: ["v4-16-1"] });
    expect(leaseOf(all[1])).toEqual(["train-1#2", "train-1#2"]);
    const scaled = await s.scale(torn);
    expect(scaled.scale?.slices?.map((x) => x.name)).toEqual(["v4-16-0", "v4-16-1"]);
    expect(scaled.grown).toBeUndefined();
    expect(scaled.attempt).toBe(2);
  });

  it("grows to the largest count it can reach and gives back what that count does not use", async () => {
    const { state, check, world, appear, all, leaseOf } = await runningOn(1, 3, flexible([4, 2, 1]));
    appear(3);
    world.advance(12 * HOUR);
    const ended = await check({ ...state, problem: timedOut });
    expect(ended.problem?.Error).toBe("ScaleUp");
    expect(ended.grown?.units).toHaveLength(1);
    const held = [all[1], all[2]].map((x) => leaseOf(x)?.[0]);
    expect(held.filter((l) => l === "train-1#2")).toHaveLength(1);
    expect(held.filter((l) => l === null)).toHaveLength(1);
  });

  it("past the attempt's own limit, the timeout goes on to CheckResults and counts as a preemption", async () => {
    const job = flexible([2, 1], { timeouts: { attemptSeconds: 3600 } });
    const { state, check, world, appear, s } = await runningOn(1, 2, job);
    appear(2);
    world.advance(HOUR);
    const ended = await check({ ...state, problem: timedOut });
    expect(ended.problem).toEqual(timedOut);
    expect(ended.running?.resume).toBe(false);
    expect(ended.grown).toBeUndefined();
    const checked = await s.check(ended);
    expect(checked.retry).toMatchObject({ preemptions: 1 });
  });

  it("an outcome decided meanwhile goes back to AwaitAttempt, which delivers it; nothing is leased", async () => {
    const { state, check, world, appear, all, leaseOf } = await runningOn(1, 2);
    await attemptStore(world.deps.store).decide(state.jobId, state.attempt, {
      kind: "succeeded",
      at: 1,
    });
    appear(2);
    world.advance(12 * HOUR);
    const next = await check({ ...state, problem: timedOut });
    expect(next.running?.resume).toBe(true);
    expect(next.problem).toBeUndefined();
    expect(leaseOf(all[1])).toEqual([null, null]);
  });

  it("a provider that fails costs the attempt nothing: it waits on and looks again later", async () => {
    const { state, world } = await runningOn(1, 2);
    const lines: string[] = [];
    const failing = createCheckScaleUp({
      ...world.deps,
      provider: {
        ...world.deps.provider,
        listSlices: async () => {
          throw new Error("provider down");
        },
      },
      log: (l) => lines.push(l),
    });
    world.advance(12 * HOUR);
    const next = await failing({ ...state, problem: timedOut });
    expect(next.running).toMatchObject({ resume: true, scaleUpAt: world.deps.clock.now() + 3 * HOUR });
    expect(lines.join("\n")).toContain("provider down");
  });

  it("slices leased for a growth the job never makes are given back by its teardown", async () => {
    const { state, check, world, appear, all, leaseOf, s } = await runningOn(1, 2);
    appear(2);
    world.advance(12 * HOUR);
    const ended: ExecutionState = await check({ ...state, problem: timedOut });
    // A host failed at the same moment and the failure budget is spent: the job stops.
    const stopped = await s.check({
      ...ended,
      retry: { ...ended.retry, failures: 1 },
      problem: {
        Error: "WorkloadFailed",
        Cause: JSON.stringify({ name: "WorkloadFailed", message: "exit 1", details: { exitCode: 1 } }),
      },
    });
    expect(stopped.decision?.action).toBe("stop");
    const torn = await s.teardown(stopped);
    expect(torn.grown).toBeUndefined();
    expect(leaseOf(all[1])).toEqual([null, null]);
  });

  it("a host's end decided while it leases wins: the new slices go back and AwaitAttempt delivers it", async () => {
    const { state, check, world, appear, all, leaseOf } = await runningOn(1, 2);
    appear(2);
    world.advance(12 * HOUR);
    const attempts = attemptStore(world.deps.store);
    const agent = world.agents.get(all[1]?.hosts[0]?.agent ?? "");
    if (!agent) throw new Error("no agent");
    const acquire = agent.acquireLease.bind(agent);
    agent.acquireLease = async (r) => {
      // Every host of the attempt exits 0 while the look leases the second slice.
      await attempts.decide(state.jobId, state.attempt, { kind: "succeeded", at: 2 });
      return acquire(r);
    };
    const next = await check({ ...state, problem: timedOut });
    expect(next.running).toMatchObject({ resume: true, lastLook: "the attempt ended meanwhile" });
    expect(next.problem).toBeUndefined();
    expect(next.grown).toBeUndefined();
    expect(leaseOf(all[1])).toEqual([null, null]);
    expect(await attempts.outcome(state.jobId, state.attempt)).toEqual({ kind: "succeeded", at: 2 });
  });

  it("a store it cannot read costs the attempt nothing: it waits on and looks again later", async () => {
    const { state, world, appear, all, leaseOf } = await runningOn(1, 2);
    appear(2);
    world.advance(12 * HOUR);
    const store = {
      ...world.deps.store,
      get: async () => {
        throw new Error("store unreachable");
      },
    };
    const next = await createCheckScaleUp({ ...world.deps, store })({ ...state, problem: timedOut });
    expect(next.running).toMatchObject({ resume: true, lastLook: "the look failed: store unreachable" });
    expect(next.problem).toBeUndefined();
    expect(leaseOf(all[1])).toEqual([null, null]);
  });

  it("ScaleSlices takes grown slices leased for an attempt that faulted, and gives back those it does not use", async () => {
    const { state, check, world, appear, all, leaseOf, s } = await runningOn(1, 3, flexible([2, 1]));
    appear(2);
    world.advance(12 * HOUR);
    const ended = await check({ ...state, problem: timedOut });
    expect(ended.grown).toEqual({ epoch: 2, units: ["v4-16-1"] });
    const torn = await s.teardown(await s.check(ended));
    // Attempt 2 faulted before it was placed (its ScaleSlices failed): attempt 3 comes next.
    const third = { ...torn, retry: { ...torn.retry, attempts: 2 } };
    const scaled = await s.scale(third);
    expect(scaled.attempt).toBe(3);
    expect(scaled.scale?.slices?.map((x) => x.name)).toEqual(["v4-16-0", "v4-16-1"]);
    expect(leaseOf(all[1])).toEqual(["train-1#3", "train-1#3"]);
    // Kept from attempt 1 on v4-16-0 …
    expect(scaled.scale?.kept).toEqual({ epoch: 1, units: ["v4-16-0"] });

    // … and when fewer are wanted than grown, the grown one not taken is given back.
    appear(3);
    const other = all[2]?.hosts.map((h) => world.agents.get(h.agent ?? ""));
    for (const a of other ?? [])
      await a?.acquireLease({ leaseId: "train-1#2", jobId: "train-1", epoch: 2, ttlMs: 60_000 });
    const two = await s.scale({
      ...third,
      job: { ...third.job, accelerator: { kind: "tpu", type: "v4-16", slices: [1], preemptible: false } },
      grown: { epoch: 2, units: ["v4-16-1", "v4-16-2"] },
    });
    expect(two.scale?.slices).toHaveLength(1);
    expect(leaseOf(all[2])).toEqual([null, null]);
  });

  it("a restart that waits for its largest count holds the grown slices with the kept ones", async () => {
    const { state, check, world, appear, all, leaseOf, s } = await runningOn(1, 2, flexible([4, 2, 1]));
    appear(2);
    world.advance(12 * HOUR);
    const ended = await check({ ...state, problem: timedOut });
    expect(ended.grown).toEqual({ epoch: 2, units: ["v4-16-1"] });
    const torn = await s.teardown(await s.check(ended));
    // Two more are on their way: the restart waits for 4, holding what it has.
    world.deps.provider.pendingSlices = async () => 2;
    const waiting = await s.scale(torn);
    expect(waiting.scale?.status).toBe("pending");
    expect(waiting.kept).toEqual({ epoch: 1, units: ["v4-16-0"] });
    expect(waiting.grown).toEqual({ epoch: 2, units: ["v4-16-1"] });
    expect(leaseOf(all[1])).toEqual(["train-1#2", "train-1#2"]);
  });

  it("a teardown slow to end the workloads renews the grown slices' leases on every try", async () => {
    const { state, check, world, appear, all, s } = await runningOn(1, 2);
    appear(2);
    world.advance(12 * HOUR);
    const checked = await s.check(await check({ ...state, problem: timedOut }));
    world.agentOf(0, 0).stubborn = true;
    const renewed: string[] = [];
    const agent = world.agents.get(all[1]?.hosts[0]?.agent ?? "");
    if (!agent) throw new Error("no agent");
    const renew = agent.renewLease.bind(agent);
    agent.renewLease = async (r) => {
      renewed.push(r.leaseId);
      return renew(r);
    };
    await expect(s.teardown(checked)).rejects.toMatchObject({ name: "TeardownIncomplete" });
    expect(renewed).toEqual(["train-1#2"]);
  });

  it("a new slice being preempted does not count: it goes back and the attempt runs on", async () => {
    const { state, check, world, appear, all, leaseOf } = await runningOn(1, 2);
    appear(2);
    const host = world.agents.get(all[1]?.hosts[1]?.agent ?? "");
    if (!host) throw new Error("no agent");
    host.preempted = true;
    world.advance(12 * HOUR);
    const next = await check({ ...state, problem: timedOut });
    expect(next.running).toMatchObject({
      resume: true,
      lastLook: "none to be had yet; the autoscaler asked",
    });
    expect(next.grown).toBeUndefined();
    expect(leaseOf(all[1])).toEqual([null, null]);
  });

  it("passes over a new slice being preempted to a healthy one behind it", async () => {
    const { state, check, world, appear, all, leaseOf } = await runningOn(1, 3);
    appear(3);
    const host = world.agents.get(all[1]?.hosts[0]?.agent ?? "");
    if (!host) throw new Error("no agent");
    host.preempted = true;
    world.advance(12 * HOUR);
    const ended = await check({ ...state, problem: timedOut });
    expect(ended.grown).toEqual({ epoch: 2, units: ["v4-16-2"] });
    expect(leaseOf(all[1])).toEqual([null, null]);
  });
});
