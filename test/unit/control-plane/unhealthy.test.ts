import { describe, expect, it } from "vitest";
import { MAX_UNHEALTHY_IN_A_ROW } from "../../../core/classification.js";
import type { ClusterSlice } from "../../../core/cluster-spec.js";
import { serializeError } from "../../../core/serialized-error.js";
import { type ExecutionState, ExecutionStateSchema } from "../../../functions/state.js";
import { fakeWorld } from "./fakes.js";
import { execution, spec, steps } from "./harness.js";

/** Slice `index` of the world's cluster rewritten by `edit` (the provider lists it so from now on). */
function reshape(
  world: ReturnType<typeof fakeWorld>,
  index: number,
  edit: (s: ClusterSlice) => ClusterSlice,
) {
  world.setCluster(world.cluster.map((s, i) => (i === index ? edit(s) : s)));
}

/** The caught problem a step's thrown error becomes on the embedded engine. */
const caught = (e: unknown) => {
  const error = serializeError(e);
  return {
    Error: error.name,
    Cause: JSON.stringify({ errorType: error.name, errorMessage: error.message, trace: [] }),
  };
};

/**
 * `state` after ScaleSlices with slice 1's first host moved onto slice 0's (an inventory that
 * changed under the job: ScaleSlices itself takes no two slices sharing a host).
 */
function collide(state: ExecutionState): ExecutionState {
  const [first, second, ...rest] = state.scale?.slices ?? [];
  const shared = first?.hosts[0]?.address;
  if (!state.scale || !first || !second || !shared) throw new Error("two slices expected");
  const moved = { ...second, hosts: second.hosts.map((h, i) => (i === 0 ? { ...h, address: shared } : h)) };
  return { ...state, scale: { ...state.scale, slices: [first, moved, ...rest] } };
}

/** One round of the machine from ScaleSlices, slices made to collide: the next state, or the last. */
async function round(s: ReturnType<typeof steps>, state: ExecutionState): Promise<ExecutionState> {
  const scaled = collide(await s.scale(state));
  let checked: ExecutionState;
  try {
    const prepared = await s.prepare(scaled);
    checked = await s.check(await s.launch(prepared));
  } catch (e) {
    checked = await s.check({ ...scaled, problem: caught(e) });
  }
  return s.teardown(checked);
}

describe("unhealthy slices never hold a job up for ever", () => {
  it("takes only whole slices: one whose hosts repeat a worker id is passed over", async () => {
    const world = fakeWorld("v4-16x3");
    reshape(world, 0, (s) => ({ ...s, hosts: s.hosts.map((h) => ({ ...h, workerId: 0 })) }));
    const s = steps(world);
    const scaled = await s.scale(await s.init({ input: spec(), execution }));
    expect(scaled.scale?.slices?.map((x) => x.name)).toEqual(["v4-16-1", "v4-16-2"]);
    for (const h of [0, 1]) expect(world.agentOf(0, h).lease).toBeNull();
    await expect(s.prepare(scaled)).resolves.toMatchObject({ placement: { slices: [{}, {}] } });
  });

  it("takes no two slices that share a host: the one that would collide is passed over", async () => {
    const world = fakeWorld("v4-16x3");
    const shared = world.cluster[0]?.hosts[0];
    reshape(world, 1, (x) => ({
      ...x,
      hosts: x.hosts.map((h, i) =>
        i === 0 && shared ? { ...h, address: shared.address, agent: shared.agent } : h,
      ),
    }));
    const s = steps(world);
    const scaled = await s.scale(await s.init({ input: spec(), execution }));
    expect(scaled.scale?.slices?.map((x) => x.name)).toEqual(["v4-16-0", "v4-16-2"]);
    await expect(s.prepare(scaled)).resolves.toMatchObject({ placement: { slices: [{}, {}] } });
  });

  it("gives back, under the older lease, a kept slice that is no longer whole", async () => {
    const world = fakeWorld("v4-16x3");
    const s = steps(world);
    let state = await s.prepare(await s.scale(await s.init({ input: spec(), execution })));
    state = await s.teardown({ ...state, decision: { action: "retry", waitSeconds: 0 } });
    expect(state.kept).toEqual({ epoch: 1, units: ["v4-16-0", "v4-16-1"] });
    reshape(world, 0, (x) => ({ ...x, hosts: x.hosts.map((h) => ({ ...h, workerId: 0 })) }));
    const scaled = await s.scale(state);
    expect(scaled.scale?.slices?.map((x) => x.name)).toEqual(["v4-16-1", "v4-16-2"]);
    expect(scaled.scale?.kept).toEqual({ epoch: 1, units: ["v4-16-1"] });
    for (const h of [0, 1]) expect(world.agentOf(0, h).lease).toBeNull();
  });

  it("keeps no lease of the slices that made an attempt unhealthy", async () => {
    // Two whole slices sharing a host: placement refuses them after ScaleSlices leased both.
    const world = fakeWorld();
    const s = steps(world);
    const scaled = collide(await s.scale(await s.init({ input: spec(), execution })));
    const unhealthy = await s.prepare(scaled).catch((e: unknown) => e);
    expect(unhealthy).toMatchObject({ name: "SliceUnhealthy", details: { slices: ["v4-16-0", "v4-16-1"] } });
    const checked = await s.check({ ...scaled, problem: caught(unhealthy) });
    expect(checked.decision).toMatchObject({ action: "retry", reason: "unhealthy" });
    const torn = await s.teardown(checked);
    expect(torn.kept).toBeUndefined();
    for (const a of world.agents.values()) expect(a.lease).toBeNull();
  });

  it(`stops with ERROR after ${MAX_UNHEALTHY_IN_A_ROW} attempts in a row abandoned, however large the budgets`, async () => {
    const world = fakeWorld();
    const s = steps(world);
    let state = await s.init({
      input: spec({ retry: { maxPreemptions: 1_000_000, maxFailures: 1_000_000 } }),
      execution,
    });
    // A state written before the count was kept (no `abandonedInARow`) still parses.
    const { abandonedInARow: _, ...old } = state.retry;
    state = ExecutionStateSchema.parse({ ...state, retry: { ...old, abandoned: 3 } });
    let rounds = 0;
    const waits: number[] = [];
    while (state.decision?.action !== "stop" && rounds < 3 * MAX_UNHEALTHY_IN_A_ROW) {
      state = await round(s, state);
      rounds += 1;
      if (state.decision?.action === "retry") waits.push(state.decision.waitSeconds);
    }
    expect(rounds).toBe(MAX_UNHEALTHY_IN_A_ROW);
    expect(waits).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60]);
    expect(state.decision).toMatchObject({ action: "stop", status: "ERROR" });
    expect(state.retry).toMatchObject({ attempts: 10, preemptions: 0, failures: 0, abandoned: 13 });
    expect(state.final?.error).toBe("UnhealthyTooManyTimes");
    expect(JSON.parse(state.final?.cause ?? "")).toMatchObject({
      status: "ERROR",
      error: { message: expect.stringContaining("10 attempts in a row"), cause: { name: "SliceUnhealthy" } },
    });
    for (const a of world.agents.values()) expect(a.lease).toBeNull();
  });
});
