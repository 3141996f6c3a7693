import { describe, expect, it } from "vitest";
import type { HostEvent } from "../../../core/host-event.js";
import type { ExecutionState } from "../../../functions/state.js";
import { fakeWorld } from "./fakes.js";
import { exitEvent, launched } from "./harness.js";

/** A world whose Step Functions cannot be reached for the next `calls` sends of `kind`. */
function withOutage(kind: "succeed" | "fail", calls: number) {
  const world = fakeWorld();
  const real = world.deps.tokens;
  let left = calls;
  const down = (which: typeof kind) => {
    if (which === kind && left-- > 0) throw new Error("connect ECONNREFUSED 127.0.0.1:8083");
  };
  world.deps.tokens = {
    ...real,
    succeed: async (token, output) => {
      down("succeed");
      return real.succeed(token, output);
    },
    fail: async (token, error, cause) => {
      down("fail");
      return real.fail(token, error, cause);
    },
  };
  return world;
}

const beat = (state: ExecutionState, slice: number, host: number, at: number): HostEvent => ({
  ...exitEvent(state, slice, host),
  kind: "heartbeat",
  eventId: `hb-${slice}-${host}-${at}`,
  at,
});

/** Every host of the harness's 2 × 2 attempt, as [slice, host]. */
const hosts = [
  [0, 0],
  [0, 1],
  [1, 0],
  [1, 1],
] as const;

describe("an outcome whose send failed is not lost", () => {
  it("is sent again when Pub/Sub brings back the event that decided it, and only once", async () => {
    const world = withOutage("fail", 1);
    const { s, state } = await launched(world);
    await s.await({ token: "tok-1", state });
    const failed = exitEvent(state, 1, 0, { exitCode: 3 });
    // The push fails (the pusher sees a 500 and redelivers): the decision stays, unsent.
    await expect(s.ingest.hostEvent(failed)).rejects.toThrow(/ECONNREFUSED/);
    expect(world.sent).toEqual([]);
    expect(await s.ingest.hostEvent(failed)).toMatchObject({ action: "recorded", redelivered: "sent" });
    expect(world.sent).toMatchObject([{ kind: "fail", token: "tok-1", error: "WorkloadFailed" }]);
    // Delivered now: neither the duplicate nor another host's failure sends it a third time.
    await s.ingest.hostEvent(failed);
    await s.ingest.hostEvent(exitEvent(state, 0, 0, { exitCode: 1 }));
    expect(world.sent).toHaveLength(1);
  });

  it("counts the last success again and completes the attempt when its first delivery was cut short", async () => {
    const world = withOutage("succeed", 1);
    const { s, state } = await launched(world);
    await s.await({ token: "tok-1", state });
    for (const [sl, h] of hosts.slice(0, 3)) await s.ingest.hostEvent(exitEvent(state, sl, h));
    const last = exitEvent(state, 1, 1);
    await expect(s.ingest.hostEvent(last)).rejects.toThrow(/ECONNREFUSED/);
    expect(await s.ingest.hostEvent(last)).toMatchObject({ action: "recorded", redelivered: "sent" });
    expect(world.sent).toMatchObject([{ kind: "succeed", token: "tok-1", output: { outcome: "succeeded" } }]);
  });

  it("is sent by the next heartbeat instead of keeping the decided attempt alive", async () => {
    const world = withOutage("fail", 1);
    const { s, state } = await launched(world, { timeouts: { heartbeatSeconds: 20 } });
    await s.await({ token: "tok-1", state });
    await expect(s.ingest.hostEvent(exitEvent(state, 1, 0, { exitCode: 3 }))).rejects.toThrow();
    world.advance(6_000);
    expect(await s.ingest.hostEvent(beat(state, 0, 0, 1_006_000))).toMatchObject({
      action: "recorded",
      redelivered: "sent",
    });
    expect(world.sent.map((x) => x.kind)).toEqual(["fail"]);
  });
});

describe("a timeout that comes after the attempt's real end", () => {
  const heartbeatTimeout = { Error: "States.HeartbeatTimeout", Cause: "no heartbeat in 20 s" };

  it("does not run a finished job again: the success decided first stands", async () => {
    // Every host exited 0, but the success never reached the token (Step Functions down), and
    // a decided attempt is not heartbeated: the heartbeat timeout fires next.
    const world = withOutage("succeed", 9);
    const { s, state } = await launched(world, { timeouts: { heartbeatSeconds: 20 } });
    await s.await({ token: "tok-1", state });
    for (const [sl, h] of hosts.slice(0, 3)) await s.ingest.hostEvent(exitEvent(state, sl, h));
    await expect(s.ingest.hostEvent(exitEvent(state, 1, 1))).rejects.toThrow(/ECONNREFUSED/);

    const checked = await s.check({ ...state, problem: heartbeatTimeout });

    expect(checked.decision).toMatchObject({ action: "stop", status: "SUCCEEDED" });
    expect(checked.retry).toMatchObject({ attempts: 1, preemptions: 0, failures: 0 });
  });

  it("is not taken for a preemption when a host's failure ended the attempt first", async () => {
    const world = withOutage("fail", 9);
    const { s, state } = await launched(world, { timeouts: { heartbeatSeconds: 20 } });
    await s.await({ token: "tok-1", state });
    await expect(s.ingest.hostEvent(exitEvent(state, 1, 0, { exitCode: 3 }))).rejects.toThrow();

    const checked = await s.check({ ...state, problem: heartbeatTimeout });

    expect(checked.retry).toMatchObject({ preemptions: 0, failures: 1 });
  });

  it("ends the attempt when it comes first, and a host's end after it changes nothing", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world, { timeouts: { heartbeatSeconds: 20 } });
    await s.await({ token: "tok-1", state });

    const checked = await s.check({ ...state, problem: heartbeatTimeout });
    for (const [sl, h] of hosts) await s.ingest.hostEvent(exitEvent(state, sl, h));
    const again = await s.check({ ...state, problem: heartbeatTimeout });

    expect(checked.retry).toMatchObject({ preemptions: 1, failures: 0 });
    expect(again.retry).toEqual(checked.retry);
    expect(world.sent.filter((x) => x.kind === "succeed")).toEqual([]);
  });
});

describe("a host's liveness is when the control plane heard it", () => {
  it("is not moved back by an old heartbeat that Pub/Sub brings back late", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world, { timeouts: { heartbeatSeconds: 20 } });
    await s.await({ token: "tok-1", state });
    for (const [sl, h] of hosts) await s.ingest.hostEvent(beat(state, sl, h, 1_000_000));
    world.advance(10_000);
    for (const [sl, h] of hosts) await s.ingest.hostEvent(beat(state, sl, h, 1_010_000));
    world.advance(15_000);
    // Slice 0 host 0's first beat again, 25 s after it was sent: every host was heard 15 s ago.
    expect(await s.ingest.hostEvent(beat(state, 0, 0, 1_000_000))).toMatchObject({ action: "recorded" });
    expect(world.sent.filter((x) => x.kind === "fail")).toEqual([]);
  });

  it("whatever the agent's clock says: one 30 s behind ours does not make its host lost", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world, { timeouts: { heartbeatSeconds: 20 } });
    await s.await({ token: "tok-1", state });
    for (let i = 0; i < 4; i++) {
      world.advance(6_000);
      const now = world.deps.clock.now();
      for (const [sl, h] of hosts) await s.ingest.hostEvent(beat(state, sl, h, now - 30_000));
    }
    expect(world.sent.filter((x) => x.kind === "fail")).toEqual([]);
    expect(world.sent.filter((x) => x.kind === "heartbeat").length).toBeGreaterThan(0);
  });
});
