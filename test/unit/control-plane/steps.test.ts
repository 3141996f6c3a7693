import { describe, expect, it } from "vitest";
import type { ClusterSlice } from "../../../core/cluster-spec.js";
import {
  InsufficientSlices,
  InvalidJobSpec,
  SliceUnhealthy,
  WorkloadStartFailed,
} from "../../../core/errors.js";
import type { HostEvent } from "../../../core/host-event.js";
import { planJob } from "../../../core/plan.js";
import { attemptStore, keys } from "../../../functions/attempts.js";
import { continuationName } from "../../../functions/continue-execution/index.js";
import {
  FLEX_GRACE_SECONDS,
  pollDelaySeconds,
  spreadDelaySeconds,
} from "../../../functions/scale-slices/index.js";
import {
  attemptTimeoutSeconds,
  type ExecutionState,
  ExecutionStateSchema,
} from "../../../functions/state.js";
import { FakeAgent, fakeWorld } from "./fakes.js";
import { continued, execution, exitEvent, launched, spec, steps } from "./harness.js";

/** A 2-slice job on v4-16x3 whose slice 1 was preempted: the teardown kept slice 0 (epoch 1). */
async function keptAfterSlice1Preempted() {
  const world = fakeWorld("v4-16x3");
  const { s, state } = await launched(world);
  const preempted = {
    Error: "Preempted",
    Cause: JSON.stringify({ name: "Preempted", message: "x", details: { slice: "v4-16-1" } }),
  };
  const torn = await s.teardown(await s.check({ ...state, problem: preempted }));
  expect(torn.kept).toEqual({ epoch: 1, units: ["v4-16-0"] });
  return { world, s, state, torn };
}

describe("Init", () => {
  it("builds the state from a job spec, the job id from the execution name", async () => {
    const world = fakeWorld();
    const state = await steps(world).init({ input: spec(), execution });
    expect(state).toMatchObject({
      jobId: "train-1",
      attempt: 0,
      retry: { attempts: 0, preemptions: 0, failures: 0 },
    });
    expect(state.job.retry.maxPreemptions).toBe(2);
  });

  it("rejects an invalid spec with InvalidJobSpec naming every problem", async () => {
    await expect(steps(fakeWorld()).init({ input: { name: "x" }, execution })).rejects.toThrow(
      InvalidJobSpec,
    );
  });

  it("still reads a running job whose attemptSeconds a later rule refuses, and keeps its timeout past the heartbeat", async () => {
    const state = await steps(fakeWorld()).init({ input: spec(), execution });
    const timeouts = { ...state.job.timeouts, heartbeatSeconds: 60, attemptSeconds: 30 };
    const old = { ...state, job: { ...state.job, timeouts } };
    expect(ExecutionStateSchema.safeParse(old).success).toBe(true);
    expect(attemptTimeoutSeconds(old.job)).toBe(61);
    expect(attemptTimeoutSeconds(state.job)).toBe(99_999_999);
  });

  it("picks up a continued job with its counters", async () => {
    const world = fakeWorld();
    const s = steps(world);
    const first = await s.init({ input: spec(), execution, stateMachine: { Id: "arn:sm" } });
    const carried = { ...first, retry: { ...first.retry, attempts: 700, preemptions: 699 } };
    const next = await s.init({
      input: { gangwayContinuation: carried },
      execution: { Id: "arn:x:train-1-c2", Name: "train-1-c2" },
    });
    expect(next).toMatchObject({
      jobId: "train-1",
      retry: { attempts: 700, preemptions: 699 },
      history: { execution: 2, events: 0 },
    });
  });
});

describe("ScaleSlices", () => {
  it("leases every host of the slices it takes, all or nothing", async () => {
    const world = fakeWorld("v4-16x3");
    const s = steps(world);
    // One host of the first slice refuses: that slice is skipped and its other host released.
    world.agentOf(0, 1).refuseLeases = true;
    const state = await s.scale(await s.init({ input: spec(), execution }));
    expect(state.scale?.status).toBe("ready");
    expect(state.scale?.slices?.map((x) => x.name)).toEqual(["v4-16-1", "v4-16-2"]);
    expect(world.agentOf(0, 0).lease).toBeNull();
    expect(world.agentOf(1, 0).lease?.leaseId).toBe("train-1#1");
  });

  it("takes the largest feasible flexible count and gives the rest back", async () => {
    const world = fakeWorld("v4-16x3");
    const s = steps(world);
    const state = await s.scale(
      await s.init({
        input: spec({ accelerator: { kind: "tpu", type: "v4-16", slices: [4, 2] } }),
        execution,
      }),
    );
    expect(state.scale).toMatchObject({ status: "ready", available: 2, wanted: [4, 2] });
    expect(world.agentOf(2, 0).lease).toBeNull();
  });

  it("waits for the autoscaler when short, then gives up with InsufficientSlices", async () => {
    const world = fakeWorld("v4-16x1");
    const s = steps(world);
    let state = await s.scale(await s.init({ input: spec({ timeouts: { scaleSeconds: 30 } }), execution }));
    expect(state.scale).toMatchObject({ status: "pending", waitSeconds: 1, polls: 0 });
    expect(world.requested).toEqual([["v4-16", 1]]);
    expect(world.agentOf(0, 0).lease).toBeNull();
    world.advance(5_000);
    state = await s.scale(state);
    expect(state.scale).toMatchObject({ status: "pending", waitSeconds: 2, polls: 1 });
    world.advance(30_000);
    await expect(s.scale(state)).rejects.toThrow(InsufficientSlices);
    await expect(s.scale(state)).rejects.toThrow("wanted 2, available 1");
  });

  it("polls less often as the wait grows: a day's wait stays far inside the history limit", async () => {
    const world = fakeWorld("v4-16x1");
    const s = steps(world);
    let state = await s.init({ input: spec({ timeouts: { scaleSeconds: 86_400 } }), execution });
    const before = state.history.events;
    let polls = 0;
    for (;;) {
      try {
        state = await s.scale(state);
      } catch (e) {
        expect(e).toBeInstanceOf(InsufficientSlices);
        break;
      }
      polls++;
      const wait = state.scale?.waitSeconds ?? 0;
      expect(wait).toBeGreaterThanOrEqual(1);
      expect(wait).toBeLessThanOrEqual(300);
      world.advance(wait * 1000);
    }
    // Each poll is a task, a choice and a wait in the execution's history.
    expect(polls * 9).toBeLessThan(4_000);
    expect(state.history.events - before).toBeLessThan(4_000);
  });
});

describe("ScaleSlices with a flexible count", () => {
  const flexible = { accelerator: { kind: "tpu", type: "v4-16", slices: [4, 2] } };

  /** The world's provider, made to say that `coming()` slices are being provisioned. */
  function provisioning(world: ReturnType<typeof fakeWorld>, coming: () => number) {
    world.deps.provider.pendingSlices = async () => coming();
  }

  /** A [4,2] job ran on 4 slices; the last was preempted and is gone, the teardown kept 3. */
  async function keptThree() {
    const world = fakeWorld("v4-16x4");
    const { s, state } = await launched(world, flexible);
    expect(state.scale?.slices).toHaveLength(4);
    const preempted = {
      Error: "Preempted",
      Cause: JSON.stringify({ name: "Preempted", message: "x", details: { slice: "v4-16-3" } }),
    };
    const torn = await s.teardown(await s.check({ ...state, problem: preempted }));
    expect(torn.kept).toEqual({ epoch: 1, units: ["v4-16-0", "v4-16-1", "v4-16-2"] });
    const gone = world.cluster[3];
    world.setCluster(world.cluster.slice(0, 3));
    for (const a of world.agents.values()) a.calls.length = 0;
    // The replacement comes back under a new name (on the same fake agents).
    const replace = () =>
      world.setCluster([...world.cluster, { ...(gone as ClusterSlice), name: "v4-16-4" }]);
    return { world, s, torn, replace };
  }

  it("asks the autoscaler for what the largest count lacks when it takes a smaller one", async () => {
    const world = fakeWorld("v4-16x2");
    const s = steps(world);
    const state = await s.scale(await s.init({ input: spec(flexible), execution }));
    expect(state.scale).toMatchObject({ status: "ready", available: 2 });
    expect(world.requested).toEqual([["v4-16", 2]]);
  });

  it("short of every count, asks for the largest", async () => {
    const world = fakeWorld("v4-16x1");
    const s = steps(world);
    const state = await s.scale(await s.init({ input: spec(flexible), execution }));
    expect(state.scale?.status).toBe("pending");
    expect(world.requested).toEqual([["v4-16", 3]]);
  });

  it("a restart on 3 kept slices waits for the 4th being provisioned, holding the 3", async () => {
    const { world, s, torn, replace } = await keptThree();
    provisioning(world, () => 1);
    const waiting = await s.scale(torn);
    expect(waiting.scale).toMatchObject({ status: "pending", available: 3 });
    expect(world.requested).toEqual([["v4-16", 1]]);
    // The kept slices are neither given back nor left to lapse: renewed under their lease.
    expect(waiting.kept).toEqual({ epoch: 1, units: ["v4-16-0", "v4-16-1", "v4-16-2"] });
    for (const sl of [0, 1, 2])
      for (const h of [0, 1]) {
        expect(world.agentOf(sl, h).lease).toMatchObject({ leaseId: "train-1#1", epoch: 1 });
        expect(world.agentOf(sl, h).calls).toEqual(["renewLease"]);
      }
    replace();
    world.advance((waiting.scale?.waitSeconds ?? 0) * 1000);
    const ready = await s.scale(waiting);
    expect(ready.scale).toMatchObject({ status: "ready", available: 4 });
    expect(ready.scale?.slices?.map((x) => x.name)).toEqual(["v4-16-0", "v4-16-1", "v4-16-2", "v4-16-4"]);
    expect(ready.scale?.kept).toEqual({ epoch: 1, units: ["v4-16-0", "v4-16-1", "v4-16-2"] });
    expect(ready.attempt).toBe(2);
  });

  it("falls back to the smaller count once the grace has passed, within the scale timeout", async () => {
    const { world, s, torn } = await keptThree();
    provisioning(world, () => 1);
    let state = await s.scale(torn);
    let waited = 0;
    while (state.scale?.status === "pending") {
      waited += state.scale.waitSeconds;
      world.advance(state.scale.waitSeconds * 1000);
      state = await s.scale(state);
    }
    expect(waited).toBe(FLEX_GRACE_SECONDS);
    expect(state.scale).toMatchObject({ status: "ready", available: 2 });
    expect(state.scale?.kept).toEqual({ epoch: 1, units: ["v4-16-0", "v4-16-1"] });
    for (const h of [0, 1]) expect(world.agentOf(2, h).lease).toBeNull();
  });

  it("a poll that faults during the wait leaves no kept lease held once torn down", async () => {
    const { world, s, torn } = await keptThree();
    provisioning(world, () => 1);
    const waiting = await s.scale(torn);
    expect(waiting.kept).toEqual({ epoch: 1, units: ["v4-16-0", "v4-16-1", "v4-16-2"] });
    const listSlices = world.deps.provider.listSlices;
    world.deps.provider.listSlices = async () => {
      throw new Error("provider API down");
    };
    world.advance((waiting.scale?.waitSeconds ?? 0) * 1000);
    await expect(s.scale(waiting)).rejects.toThrow("provider API down");
    const checked = await s.check({
      ...waiting,
      problem: { Error: "Error", Cause: '{"errorType":"Error","errorMessage":"provider API down"}' },
    });
    // Still no list: the teardown completes all the same (the leases lapse at their TTL).
    const lines: string[] = [];
    world.deps.log = (line) => lines.push(line);
    await s.teardown(checked);
    expect(lines.join("\n")).toContain("left to lapse");
    expect(world.agentOf(0, 0).lease).toMatchObject({ leaseId: "train-1#1" });
    // With the list back, the kept slices' hosts are released under the lease they hold.
    world.deps.provider.listSlices = listSlices;
    const after = await s.teardown(checked);
    expect(after.kept).toBeUndefined();
    for (const sl of [0, 1, 2]) for (const h of [0, 1]) expect(world.agentOf(sl, h).lease).toBeNull();
  });

  it("does not wait when nothing is on its way, nor without kept slices", async () => {
    const { world, s, torn } = await keptThree();
    provisioning(world, () => 0);
    expect((await s.scale(torn)).scale).toMatchObject({ status: "ready", available: 2 });
    const fresh = fakeWorld("v4-16x2");
    provisioning(fresh, () => 2);
    const f = steps(fresh);
    const state = await f.scale(await f.init({ input: spec(flexible), execution }));
    expect(state.scale).toMatchObject({ status: "ready", available: 2 });
  });
});

describe("ScaleSlices when the autoscaler fails", () => {
  /** The world's autoscaler, made to fail; answers the lines logged. */
  function failing(world: ReturnType<typeof fakeWorld>) {
    const lines: string[] = [];
    world.deps.provider.requestSlices = async () => {
      throw new Error("autoscaler API down");
    };
    world.deps.log = (line) => lines.push(line);
    return lines;
  }

  it("a flexible job that can run on a smaller count runs, the failure logged", async () => {
    const world = fakeWorld("v4-16x2");
    const lines = failing(world);
    const s = steps(world);
    const state = await s.scale(
      await s.init({
        input: spec({ accelerator: { kind: "tpu", type: "v4-16", slices: [4, 2] } }),
        execution,
      }),
    );
    expect(state.scale).toMatchObject({ status: "ready", available: 2 });
    expect(state.scale?.slices?.map((x) => x.name)).toEqual(["v4-16-0", "v4-16-1"]);
    expect(lines.join("\n")).toContain("autoscaler API down");
  });

  it("a job short of slices waits, then gives up, holding no lease", async () => {
    const world = fakeWorld("v4-16x1");
    failing(world);
    const s = steps(world);
    const state = await s.scale(await s.init({ input: spec({ timeouts: { scaleSeconds: 30 } }), execution }));
    expect(state.scale).toMatchObject({ status: "pending", available: 1 });
    for (const h of [0, 1]) expect(world.agentOf(0, h).lease).toBeNull();
    world.advance(30_000);
    await expect(s.scale(state)).rejects.toThrow(InsufficientSlices);
    for (const h of [0, 1]) expect(world.agentOf(0, h).lease).toBeNull();
  });

  it("a restart short of slices gives back the slices it kept and those it leased", async () => {
    const { world, s, torn } = await keptAfterSlice1Preempted();
    // The preempted slice is gone and the spare one will not lease: 1 of 2.
    world.setCluster(world.cluster.filter((x) => x.name !== "v4-16-1"));
    world.agentOf(1, 1).refuseLeases = true;
    failing(world);
    const next = await s.scale(torn);
    expect(next.scale).toMatchObject({ status: "pending", available: 1 });
    expect(next.kept).toBeUndefined();
    for (const sl of [0, 1]) for (const h of [0, 1]) expect(world.agentOf(sl, h).lease).toBeNull();
  });
});

describe("ScaleSlices leases", () => {
  it("releases every host of a unit it could not wholly lease, one that granted but did not answer too", async () => {
    const world = fakeWorld("v4-16x3");
    const late = world.agentOf(1, 1);
    // The host grants the lease; its answer is lost to a deadline.
    late.acquireLease = async function (this: FakeAgent, r) {
      await FakeAgent.prototype.acquireLease.call(this, r);
      throw Object.assign(new Error("acquireLease: DEADLINE_EXCEEDED"), { code: 4 });
    };
    const s = steps(world);
    const state = await s.scale(await s.init({ input: spec(), execution }));
    expect(state.scale?.slices?.map((x) => x.name)).toEqual(["v4-16-0", "v4-16-2"]);
    expect(late.lease).toBeNull();
    expect(world.agentOf(1, 0).lease).toBeNull();
  });

  it("renews leases taken early while later batches wait on slow agents", async () => {
    const world = fakeWorld("v4-16x3");
    const slow = world.agentOf(1, 0);
    slow.acquireLease = async function (this: FakeAgent) {
      this.calls.push("acquireLease");
      world.advance(100_000); // longer than a third of the 180 s lease
      throw Object.assign(new Error("acquireLease: DEADLINE_EXCEEDED"), { code: 4 });
    };
    const s = steps(world);
    const state = await s.scale(await s.init({ input: spec(), execution }));
    expect(state.scale?.slices?.map((x) => x.name)).toEqual(["v4-16-0", "v4-16-2"]);
    expect(world.agentOf(0, 0).calls).toEqual(["acquireLease", "renewLease"]);
    expect(world.agentOf(0, 1).calls).toEqual(["acquireLease", "renewLease"]);
  });

  it("drops a unit whose lease lapsed during a long call, and takes another", async () => {
    const world = fakeWorld("v4-16x4");
    const slow = world.agentOf(1, 0);
    slow.acquireLease = async function (this: FakeAgent) {
      world.advance(200_000);
      world.agentOf(0, 1).lease = null; // slice 0's lease lapsed meanwhile
      throw Object.assign(new Error("acquireLease: DEADLINE_EXCEEDED"), { code: 4 });
    };
    const s = steps(world);
    const state = await s.scale(await s.init({ input: spec(), execution }));
    expect(state.scale?.slices?.map((x) => x.name)).toEqual(["v4-16-2", "v4-16-3"]);
    expect(world.agentOf(0, 0).lease).toBeNull();
  });

  it("takes slices in natural name order, as a plan shows them: v4-16-2 before v4-16-10", async () => {
    const world = fakeWorld("v4-16x12");
    // However the provider lists them.
    world.setCluster([...world.cluster].reverse());
    const s = steps(world);
    const init = await s.init({
      input: spec({ accelerator: { kind: "tpu", type: "v4-16", slices: 3 } }),
      execution,
    });
    const planned = planJob(init.job, world.cluster, { jobId: "train-1", attempt: 1 });
    const state = await s.scale(init);
    const names = state.scale?.slices?.map((x) => x.name);
    expect(names).toEqual(["v4-16-0", "v4-16-1", "v4-16-2"]);
    expect(planned.slices.map((x) => x.name)).toEqual(names);
    const placed = await s.prepare(state);
    expect(planned.coordinator).toBe(
      `${placed.placement?.coordinatorIp}:${placed.placement?.coordinatorPort}`,
    );
  });

  it("spreads the polls of jobs that wait together, never past the poll delay", async () => {
    const waits = (jobId: string) => {
      const out: number[] = [];
      for (let polls = 0; polls < 30; polls++) {
        const base = pollDelaySeconds(polls, polls * 10);
        const wait = spreadDelaySeconds(base, jobId, polls);
        expect(wait).toBeLessThanOrEqual(base);
        expect(wait).toBeGreaterThanOrEqual(Math.max(1, Math.ceil(base * 0.75)));
        out.push(wait);
      }
      return out;
    };
    expect(waits("train-1")).not.toEqual(waits("train-2"));
    // Through the step: two jobs short of slices from the same moment part ways.
    const world = fakeWorld("v4-16x1");
    const s = steps(world);
    const a = await s.init({ input: spec({ timeouts: { scaleSeconds: 3600 } }), execution });
    const b = { ...a, jobId: "train-2" };
    const seq = async (state: ExecutionState) => {
      const out: number[] = [];
      for (let i = 0; i < 12; i++) {
        state = await s.scale(state);
        out.push(state.scale?.waitSeconds ?? 0);
      }
      return out;
    };
    expect(await seq(a)).not.toEqual(await seq(b));
  });
});

describe("PreparePlacement and LaunchHosts", () => {
  it("records the attempt and starts every host with its own environment", async () => {
    const world = fakeWorld();
    const { state } = await launched(world);
    expect(state.placement?.slices.map((x) => x.hosts.length)).toEqual([2, 2]);
    const run = world.agentOf(1, 1).run_;
    expect(run?.env).toMatchObject({
      MEGASCALE_SLICE_ID: "1",
      EXECUTOR_CALL_INDEX: "1",
      MEGASCALE_NUM_SLICES: "2",
      GANGWAY_ATTEMPT: "1",
    });
    expect(run?.argv).toEqual(["python3", "train.py"]);
    const attempts = attemptStore(world.deps.store);
    const record = await attempts.record("train-1", 1);
    expect(record?.hosts).toHaveLength(4);
    // Read again it comes from the parsed copy; rewritten, the new text is what counts.
    expect(await attempts.record("train-1", 1)).toEqual(record);
    await attempts.writeRecord({ ...(record as NonNullable<typeof record>), hosts: [] });
    expect((await attempts.record("train-1", 1))?.hosts).toEqual([]);
    expect(await attemptStore(world.deps.store).routeSlice("v4-16-1")).toEqual({ jobId: "train-1" });
  });

  it("abandons the attempt as SliceUnhealthy when a host lost its lease", async () => {
    const world = fakeWorld();
    const s = steps(world);
    const state = await s.scale(await s.init({ input: spec(), execution }));
    world.agentOf(1, 0).lease = null;
    await expect(s.prepare(state)).rejects.toThrow(SliceUnhealthy);
  });

  it("classifies a host that cannot start", async () => {
    const world = fakeWorld();
    const s = steps(world);
    const state = await s.prepare(await s.scale(await s.init({ input: spec(), execution })));
    world.agentOf(0, 1).startError = "spawn python3 ENOENT";
    await expect(s.launch(state)).rejects.toThrow(WorkloadStartFailed);
    world.agentOf(0, 1).startError = undefined;
    world.agentOf(1, 1).unreachable = true;
    await expect(s.launch(state)).rejects.toMatchObject({ name: "HostUnreachable" });
  });
});

describe("ingest and AwaitAttempt resolve the attempt's one token", () => {
  it("succeeds once every host exited 0, whichever comes first: events or token", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world);
    for (const [sl, h] of [
      [0, 0],
      [0, 1],
      [1, 0],
    ] as const) {
      expect(await s.ingest.hostEvent(exitEvent(state, sl, h))).toMatchObject({ action: "recorded" });
    }
    expect(await s.ingest.hostEvent(exitEvent(state, 1, 1))).toMatchObject({
      action: "decided",
      outcome: "succeeded",
      delivered: "waiting",
    });
    expect(world.sent).toEqual([]);
    expect(await s.await({ token: "tok-1", state })).toEqual({ registered: true, delivered: "sent" });
    expect(world.sent).toMatchObject([{ kind: "succeed", token: "tok-1", output: { outcome: "succeeded" } }]);
  });

  it("fails at once when any host exits non-zero, with the user's own exception", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world);
    await s.await({ token: "tok-1", state });
    const userError = { name: "DeliberateFailure", message: "boom", stack: "Traceback …" };
    const r = await s.ingest.hostEvent(exitEvent(state, 1, 0, { exitCode: 3, error: userError }));
    expect(r).toMatchObject({ action: "decided", outcome: "DeliberateFailure", delivered: "sent" });
    const failure = world.sent[0];
    expect(failure).toMatchObject({ kind: "fail", token: "tok-1", error: "DeliberateFailure" });
    expect(JSON.parse(failure?.cause ?? "")).toMatchObject({
      name: "DeliberateFailure",
      details: { exitCode: 3, slice: "v4-16-1", host: 0 },
    });
    // A second failure, a duplicate and a cancelled exit change nothing.
    await s.ingest.hostEvent(exitEvent(state, 0, 0, { exitCode: 1 }));
    expect(await s.ingest.hostEvent(exitEvent(state, 1, 0, { exitCode: 3 }))).toEqual({
      action: "recorded",
      jobId: "train-1",
      attempt: 1,
    });
    await s.ingest.hostEvent(
      exitEvent(state, 0, 1, { exitCode: null, signal: "SIGTERM", cancelled: true, eventId: "c" }),
    );
    expect(world.sent).toHaveLength(1);
  });

  it("turns a notice for a slice of the attempt into Preempted, and ignores stale ones", async () => {
    const world = fakeWorld("v4-16x3");
    const { s, state } = await launched(world);
    await s.await({ token: "tok-1", state });
    expect(await s.ingest.notice({ slice: "v4-16-2" })).toMatchObject({
      action: "ignored",
      reason: "slice v4-16-2 is not part of any attempt",
    });
    expect(await s.ingest.notice({ slice: "v4-16-1", attempt: 0 })).toMatchObject({
      action: "ignored",
      reason: "stale notice for attempt 0",
    });
    expect(await s.ingest.hostEvent(exitEvent({ ...state, attempt: 0 }, 0, 0))).toMatchObject({
      action: "ignored",
    });
    expect(await s.ingest.notice({ slice: "v4-16-1", reason: "spot reclaimed" })).toMatchObject({
      action: "decided",
      outcome: "Preempted",
    });
    expect(world.sent).toMatchObject([{ kind: "fail", error: "Preempted" }]);
    expect(await s.ingest.notice({ slice: "v4-16-1" })).toMatchObject({ action: "recorded" });
    expect(world.sent).toHaveLength(1);
  });
});

describe("heartbeats keep an attempt alive and find silent hosts", () => {
  const beat = (state: ExecutionState, slice: number, host: number, at: number): HostEvent => ({
    ...exitEvent(state, slice, host),
    kind: "heartbeat",
    eventId: `hb-${slice}-${host}-${at}`,
    at,
    agent: `${state.placement?.slices[slice]?.hosts[host]?.address}:9000`,
  });

  it("renews each host's lease and heartbeats the task while every host is heard from", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world, { timeouts: { heartbeatSeconds: 20 } });
    await s.await({ token: "tok-1", state });
    world.advance(6_000);
    for (const [sl, h] of [
      [0, 0],
      [0, 1],
      [1, 0],
      [1, 1],
    ] as const) {
      expect(await s.ingest.hostEvent(beat(state, sl, h, 1_006_000))).toMatchObject({ action: "recorded" });
    }
    expect(world.agentOf(1, 1).calls).toContain("renewLease");
    expect(world.sent.filter((x) => x.kind === "heartbeat")).toHaveLength(1);
  });

  it("ends the attempt with HostLost when a host stays silent for a whole period", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world, { timeouts: { heartbeatSeconds: 20 } });
    await s.await({ token: "tok-1", state });
    for (let t = 5_000; t <= 25_000; t += 5_000) {
      world.advance(5_000);
      // Slice 1's head never speaks again.
      for (const [sl, h] of [
        [0, 0],
        [0, 1],
        [1, 1],
      ] as const)
        await s.ingest.hostEvent(beat(state, sl, h, 1_000_000 + t));
    }
    const failure = world.sent.find((x) => x.kind === "fail");
    expect(failure).toMatchObject({ error: "HostLost" });
    expect(failure?.cause).toContain("v4-16-1#0");
    const checked = await s.check({ ...state, problem: { Error: "HostLost", Cause: failure?.cause } });
    expect(checked.decision).toMatchObject({ action: "retry", reason: "preempted" });
  });
});

describe("CheckResults and Teardown", () => {
  it("stops SUCCEEDED with results in slice then host order, flat or nested", async () => {
    for (const flatten of [true, false]) {
      const world = fakeWorld();
      const { s, state } = await launched(world, { flatten });
      for (const [sl, h] of [
        [1, 1],
        [0, 1],
        [1, 0],
        [0, 0],
      ] as const)
        await s.ingest.hostEvent(exitEvent(state, sl, h));
      const checked = await s.check({ ...state, completion: { outcome: "succeeded" } });
      expect(checked.decision).toMatchObject({ action: "stop", status: "SUCCEEDED" });
      const status = checked.final?.status as { result: unknown; counters: unknown };
      const r = (sl: number, h: number) => ({ slice: sl, host: h });
      expect(status.result).toEqual(
        flatten
          ? [r(0, 0), r(0, 1), r(1, 0), r(1, 1)]
          : [
              [r(0, 0), r(0, 1)],
              [r(1, 0), r(1, 1)],
            ],
      );
      expect(status.counters).toEqual({ attempts: 1, preemptions: 0, failures: 0 });
    }
  });

  it("retries a preemption and releases the preempted slice to the provider", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world);
    const checked = await s.check({
      ...state,
      problem: {
        Error: "Preempted",
        Cause: JSON.stringify({ name: "Preempted", message: "x", details: { slice: "v4-16-1" } }),
      },
    });
    expect(checked.decision).toMatchObject({ action: "retry", reason: "preempted", waitSeconds: 0 });
    expect(checked.retry).toMatchObject({ attempts: 1, preemptions: 1 });
    const torn = await s.teardown(checked);
    expect(world.released).toEqual([[["v4-16-1"], "preempted"]]);
    expect(torn.scale).toBeUndefined();
    // An in-place restart: the healthy slice keeps its lease (its workloads gone), the
    // preempted one is free.
    expect(torn.kept).toEqual({ epoch: 1, units: ["v4-16-0"] });
    for (const h of [0, 1]) {
      expect(world.agentOf(0, h).lease).toMatchObject({ leaseId: "train-1#1", epoch: 1 });
      expect(world.agentOf(0, h).run_).toMatchObject({ exited: true, cancelled: true });
      expect(world.agentOf(1, h).lease).toBeNull();
    }
    for (const a of world.agents.values()) a.calls.length = 0;
    // The next attempt gets a new epoch; the kept slice costs no lease or status call, and its
    // Run takes the older lease over.
    const next = await s.scale(torn);
    expect(next.attempt).toBe(2);
    expect(next.kept).toBeUndefined();
    expect(next.scale?.kept).toEqual({ epoch: 1, units: ["v4-16-0"] });
    expect(next.scale?.slices?.map((x) => x.name)).toEqual(["v4-16-0", "v4-16-1"]);
    const put = world.deps.store.put.bind(world.deps.store);
    const written: string[] = [];
    world.deps.store.put = (key, value) => {
      written.push(key);
      return put(key, value);
    };
    const placed = await s.prepare(next);
    world.deps.store.put = put;
    expect(world.agentOf(0, 0).calls).toEqual([]);
    expect(world.agentOf(1, 0).calls).toEqual(["acquireLease", "status"]);
    // The kept slice's routes already lead to this job: only the replacement's are written.
    const routes = written.filter((k) => k.startsWith("index/"));
    expect(routes).toContain("index/slices/v4-16-1.json");
    expect(routes.filter((k) => k.includes("slices/"))).toEqual(["index/slices/v4-16-1.json"]);
    const keptAddresses = world.cluster[0]?.hosts.map(
      (h) => `index/hosts/${encodeURIComponent(h.address)}.json`,
    );
    for (const k of keptAddresses ?? []) expect(routes).not.toContain(k);
    expect(routes).toHaveLength(1 + 2);
    await s.launch(placed);
    for (const h of [0, 1]) {
      expect(world.agentOf(0, h).calls).toEqual(["run"]);
      expect(world.agentOf(0, h).lease).toMatchObject({ leaseId: "train-1#2", epoch: 2 });
      expect(world.agentOf(0, h).run_).toMatchObject({ attempt: 2, exited: false });
    }
    // An event of the old attempt is stale.
    expect(await s.ingest.hostEvent(exitEvent(state, 0, 0, { exitCode: 1 }))).toMatchObject({
      action: "ignored",
    });
    // A notice for the kept slice reaches attempt 2 through the route attempt 1 wrote; one that
    // names attempt 1 is stale.
    expect(await s.ingest.notice({ slice: "v4-16-0", attempt: 1 })).toMatchObject({ action: "ignored" });
    expect(await s.ingest.notice({ slice: "v4-16-0" })).toMatchObject({
      action: "decided",
      jobId: "train-1",
      attempt: 2,
      outcome: "Preempted",
    });
  });

  it("gives back kept slices a failed attempt never launched on, under the older lease they hold", async () => {
    const { world, s, torn } = await keptAfterSlice1Preempted();
    const next = await s.scale(torn);
    // The replacement's host is being preempted: the attempt is abandoned before it runs.
    const replacement = next.scale?.slices?.find((x) => x.name !== "v4-16-0")?.name;
    const sick = world.cluster.findIndex((x) => x.name === replacement);
    world.agentOf(sick, 0).preempted = true;
    const unhealthy = await s.prepare(next).catch((e: Error) => e);
    expect(unhealthy).toMatchObject({ name: "SliceUnhealthy" });
    const checked = await s.check({
      ...next,
      problem: { Error: "SliceUnhealthy", Cause: JSON.stringify({ name: "SliceUnhealthy", message: "x" }) },
    });
    expect(checked.decision?.action).toBe("retry");
    const again = await s.teardown(checked);
    // The kept slice still held attempt 1's lease: released under it, not kept a second time;
    // the sick slice goes back to the provider.
    for (const h of [0, 1]) expect(world.agentOf(0, h).lease).toBeNull();
    expect(again.kept).toBeUndefined();
    expect(world.released.at(-1)).toEqual([[replacement], "preempted"]);
  });

  it("waits before retrying when slices could not be had", async () => {
    const world = fakeWorld();
    const s = steps(world);
    const state = await s.init({ input: spec(), execution });
    const checked = await s.check({
      ...state,
      problem: {
        Error: "InsufficientSlices",
        Cause: '{"errorType":"InsufficientSlices","errorMessage":"wanted 2"}',
      },
    });
    expect(checked.decision).toMatchObject({ action: "retry", reason: "preempted", waitSeconds: 5 });
  });

  it("stops FAILED with the first failure once the failure budget is spent", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world);
    const first = {
      Error: "DeliberateFailure",
      Cause: JSON.stringify({ name: "DeliberateFailure", message: "first", details: { exitCode: 1 } }),
    };
    const a = await s.teardown(await s.check({ ...state, problem: first }));
    expect(a.decision?.action).toBe("retry");
    const b = await s.check({
      ...a,
      attempt: 2,
      problem: {
        Error: "DeliberateFailure",
        Cause: JSON.stringify({ name: "DeliberateFailure", message: "second", details: { exitCode: 1 } }),
      },
    });
    expect(b.decision).toMatchObject({ action: "stop", status: "FAILED" });
    expect(b.final?.error).toBe("DeliberateFailure");
    expect(JSON.parse(b.final?.cause ?? "")).toMatchObject({
      status: "FAILED",
      error: { message: "first" },
      counters: { failures: 2 },
    });
  });

  /** An attempt going round again whose first host has a process that will not die. */
  async function stubbornAttempt(overrides: Record<string, unknown> = {}) {
    const world = fakeWorld();
    const { s, state } = await launched(world, overrides);
    const stubborn = world.agentOf(0, 0);
    stubborn.stubborn = true;
    const torn = { ...state, decision: { action: "retry" as const, waitSeconds: 0 } };
    return { world, s, state, stubborn, torn };
  }

  it("refuses to finish teardown while a process of the attempt is alive", async () => {
    const { s, torn } = await stubbornAttempt();
    await expect(s.teardown(torn)).rejects.toMatchObject({ name: "TeardownIncomplete" });
  });

  it("counts teardownSeconds from now when its start was left empty by a killed writer", async () => {
    const { world, s, state, torn } = await stubbornAttempt({ timeouts: { teardownSeconds: 120 } });
    await world.deps.store.put(keys.teardownStarted(state.jobId, state.attempt), "");
    await expect(s.teardown(torn)).rejects.toMatchObject({ name: "TeardownIncomplete" });
    world.advance(119_000);
    await expect(s.teardown(torn)).rejects.toMatchObject({ name: "TeardownIncomplete" });
    world.advance(1_000);
    await expect(s.teardown(torn)).rejects.toMatchObject({ name: "TeardownTimedOut" });
  });

  it("gives up on a process that will not die once the job's teardownSeconds have passed", async () => {
    const { world, s, torn } = await stubbornAttempt({ timeouts: { teardownSeconds: 120 } });
    await expect(s.teardown(torn)).rejects.toMatchObject({ name: "TeardownIncomplete" });
    world.advance(119_000);
    await expect(s.teardown(torn)).rejects.toMatchObject({ name: "TeardownIncomplete" });
    world.advance(1_000);
    await expect(s.teardown(torn)).rejects.toMatchObject({
      name: "TeardownTimedOut",
      message: expect.stringContaining("after 120 s"),
    });
    // The job is closed: done (no lease renewed any more), its status says why.
    const store = attemptStore(world.deps.store);
    expect(await store.current("train-1")).toMatchObject({ state: "done" });
    expect(JSON.parse((await world.deps.store.get("jobs/train-1/status.json")) ?? "{}")).toMatchObject({
      status: "ERROR",
      error: { name: "TeardownTimedOut" },
      counters: { attempts: 0 },
    });
  });

  it("gives back, when it gives up, every host it stopped cleanly rather than hold them to their lease's end", async () => {
    const { world, s, torn } = await stubbornAttempt({ timeouts: { teardownSeconds: 60 } });
    await expect(s.teardown(torn)).rejects.toMatchObject({ name: "TeardownIncomplete" });
    world.advance(60_000);
    await expect(s.teardown(torn)).rejects.toMatchObject({ name: "TeardownTimedOut" });
    // Cancelled to be kept for the next attempt, which will not come: released.
    expect(world.agentOf(1, 0).lease).toBeNull();
    expect(world.agentOf(1, 1).lease).toBeNull();
    expect(world.agentOf(0, 1).lease).toBeNull();
  });

  it("writes an ERROR status with the fault and the counters when it cleans up after a fault", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world);
    const fault = { Error: "Error", Cause: JSON.stringify({ name: "Error", message: "S3 SlowDown" }) };
    // The faulted step's state still says "retry": nothing goes round again all the same.
    await s.teardown({ ...state, decision: { action: "retry", waitSeconds: 0 }, fault });
    expect(JSON.parse((await world.deps.store.get("jobs/train-1/status.json")) ?? "{}")).toMatchObject({
      status: "ERROR",
      error: { message: "S3 SlowDown" },
      counters: { attempts: 0, preemptions: 0, failures: 0 },
    });
    expect(await attemptStore(world.deps.store).current("train-1")).toMatchObject({ state: "done" });
    // Every host was released.
    for (const a of world.agents.values()) expect(a.lease).toBeNull();
  });

  it("keeps a released host in the teardown while its reply names processes that outlived SIGKILL", async () => {
    const { s, stubborn, torn } = await stubbornAttempt();
    // Stopping: every lease is released; the freed host shows no run, only the reply says what is left.
    const stopping = {
      ...torn,
      decision: { action: "stop" as const, status: "FAILED" as const, waitSeconds: 0 },
    };
    await expect(s.teardown(stopping)).rejects.toMatchObject({ name: "TeardownIncomplete" });
    expect(stubborn.lease).toBeNull();
    // Retried on the freed host, the release reports them again until they are gone.
    await expect(s.teardown(stopping)).rejects.toMatchObject({ name: "TeardownIncomplete" });
    stubborn.stubborn = false;
    await expect(s.teardown(stopping)).resolves.toMatchObject({ attempt: torn.attempt });
  });

  it("counts the tries it took in the execution's history", async () => {
    const { s, state, stubborn, torn } = await stubbornAttempt();
    for (let i = 0; i < 2; i++) await expect(s.teardown(torn)).rejects.toThrow();
    stubborn.stubborn = false;
    const once = await steps(fakeWorld()).teardown({
      ...(await launched(fakeWorld())).state,
      decision: torn.decision,
    });
    const after = await s.teardown(torn);
    expect(after.history.events - state.history.events).toBe(once.history.events - state.history.events + 6);
  });

  it("learns each host's end from its release (one call), asking Status only of agents that do not say", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world);
    const older = world.agentOf(0, 1);
    older.statusOnRelease = false;
    older.stubborn = true;
    for (const a of [world.agentOf(0, 0), older]) a.calls.length = 0;
    await expect(
      s.teardown({ ...state, decision: { action: "retry", waitSeconds: 0 } }),
    ).rejects.toMatchObject({ name: "TeardownIncomplete" });
    expect(world.agentOf(0, 0).calls).toEqual(["cancel"]);
    expect(older.calls).toEqual(["cancel", "status"]);
  });

  it("continues in a new execution past the history budget, counters carried", async () => {
    const world = fakeWorld();
    const { s, tornDown } = await continued(world);
    const done = await s.continue(tornDown);
    expect(world.started).toHaveLength(1);
    expect(world.started[0]?.name).toBe("train-1-c2");
    expect(JSON.parse(world.started[0]?.input ?? "").gangwayContinuation.retry).toMatchObject({
      attempts: 1,
      preemptions: 1,
    });
    expect(done.final?.status).toMatchObject({ continuedAs: expect.stringContaining("train-1-c2") });
    expect(continuationName("x".repeat(80), 12)).toHaveLength(80);
    // Long ids that share their first 77 characters still name different continuations.
    const a = `${"x".repeat(77)}ab`;
    const b = `${"x".repeat(77)}cd`;
    expect(continuationName(a, 2)).not.toBe(continuationName(b, 2));
    expect(continuationName(a, 2)).toHaveLength(80);
  });
});
