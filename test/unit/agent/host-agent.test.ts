import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RunRequest } from "../../../functions/clients/agent/messages.js";
import { HostAgent } from "../../../infra/agent/host-agent.js";
import { groupMembers, readProc, terminateGroup } from "../../../infra/agent/process-group.js";
import { Workload } from "../../../infra/agent/workload.js";
import { FakeClock } from "./fake-clock.js";
import { MemoryEventSink } from "./memory-event-sink.js";

let dir: string;
let clock: FakeClock;
let sink: MemoryEventSink;
let agent: HostAgent;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gangway-agent-unit-"));
  clock = new FakeClock();
  sink = new MemoryEventSink();
  agent = new HostAgent({
    address: "127.0.1.1",
    workDir: dir,
    lockfilePath: join(dir, "lock"),
    eventSink: sink,
    clock,
    graceMs: 200,
    baseEnv: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    log: () => {},
  });
  agent.agent = "127.0.1.1:1";
});
afterEach(async () => {
  await agent.close(100);
  rmSync(dir, { recursive: true, force: true });
});

const run = (extra: Partial<RunRequest> = {}): RunRequest => ({
  leaseId: "L",
  epoch: 1,
  jobId: "job",
  attempt: 1,
  sliceIndex: 0,
  sliceName: "s",
  hostIndex: 0,
  argv: ["sleep", "300"],
  env: {},
  cwd: "",
  graceMs: 0,
  slicePeers: [],
  heartbeatMs: 0,
  takeOverTtlMs: 0,
  ...extra,
});

describe("HostAgent leases", () => {
  it("grants, renews idempotently, lets the same job move to a newer epoch, refuses the rest", async () => {
    await agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 2, ttlMs: 1000 });
    clock.advance(500);
    const again = await agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 2, ttlMs: 1000 });
    expect(again.lease?.expiresAtMs).toBe(clock.now() + 1000);
    await expect(
      agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 1, ttlMs: 1000 }),
    ).rejects.toMatchObject({
      name: "LeaseConflict",
    });
    await expect(
      agent.acquireLease({ leaseId: "M", jobId: "job", epoch: 2, ttlMs: 1000 }),
    ).rejects.toMatchObject({
      name: "LeaseConflict",
    });
    await expect(
      agent.acquireLease({ leaseId: "X", jobId: "other", epoch: 9, ttlMs: 1000 }),
    ).rejects.toMatchObject({
      name: "LeaseConflict",
    });
    const moved = await agent.acquireLease({ leaseId: "M", jobId: "job", epoch: 3, ttlMs: 1000 });
    expect(moved.lease).toMatchObject({ leaseId: "M", epoch: 3 });
    await expect(agent.renewLease({ leaseId: "L", epoch: 2, ttlMs: 1000 })).rejects.toMatchObject({
      name: "LeaseConflict",
    });
  });

  it("an expired lease frees the host, kills its run, reports it lost; renewing it afterwards is refused", async () => {
    await agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 1, ttlMs: 1000 });
    const started = await agent.startRun(run());
    expect(started.started).toBe(true);
    clock.advance(999);
    expect(agent.status().state).toBe("running");
    clock.advance(1);
    const lost = await sink.waitFor((e) => e.event.kind === "lost");
    expect(lost).toMatchObject({ jobId: "job", leaseId: "L", signal: "SIGTERM", cancelled: false });
    expect(groupMembers(started.pid)).toEqual([]);
    await expect.poll(() => agent.status().state).toBe("idle");
    expect(agent.status()).toMatchObject({ lease: null, run: null });
    await expect(agent.renewLease({ leaseId: "L", epoch: 1, ttlMs: 1000 })).rejects.toMatchObject({
      name: "LeaseConflict",
    });
  });

  it("reports its run lost when the agent stops under it, so the attempt ends now", async () => {
    await agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 1, ttlMs: 60_000 });
    const started = await agent.startRun(run());
    await agent.close(100);
    const lost = await sink.waitFor((e) => e.event.kind === "lost");
    expect(lost).toMatchObject({ jobId: "job", attempt: 1, cancelled: false, reason: "agent shutting down" });
    expect(groupMembers(started.pid)).toEqual([]);
  });

  it("runs a lease its full TTL again from a cancel (the holder keeps the host for its next attempt)", async () => {
    await agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 1, ttlMs: 1000 });
    await agent.startRun(run());
    clock.advance(900);
    await agent.cancel({ leaseId: "L", epoch: 1, graceMs: 100 });
    expect(agent.status().lease?.expiresAtMs).toBe(clock.now() + 1000);
    clock.advance(999);
    expect(agent.status().lease).toMatchObject({ leaseId: "L", epoch: 1 });
  });

  it("renews a live lease at once, even while a long Cancel holds the host", async () => {
    await agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 1, ttlMs: 1000 });
    const script = `trap "" TERM; echo ready; while :; do sleep 1; done`;
    await agent.startRun(run({ argv: ["sh", "-c", script] }));
    await expect.poll(() => agent.readOutput(0).stdout.toString()).toContain("ready");
    const order: string[] = [];
    const cancel = agent.cancel({ leaseId: "L", epoch: 1, graceMs: 1500 }).then(() => order.push("cancel"));
    clock.advance(900);
    const renewed = await agent.renewLease({ leaseId: "L", epoch: 1, ttlMs: 1000 });
    order.push("renew");
    expect(renewed.lease?.expiresAtMs).toBe(clock.now() + 1000);
    expect(order).toEqual(["renew"]);
    // The cancel ends with SIGKILL after its grace; the renewed lease is still there.
    await cancel;
    expect(order).toEqual(["renew", "cancel"]);
    expect(agent.status()).toMatchObject({ state: "exited", lease: { leaseId: "L" } });
  });

  it("expires a lease whose timer fired a little early (timers and clocks disagree by a millisecond)", async () => {
    class EarlyClock extends FakeClock {
      override schedule(ms: number, fn: () => void): () => void {
        return super.schedule(Math.max(0, ms - 1), fn);
      }
    }
    const early = new EarlyClock();
    const host = new HostAgent({
      address: "127.0.1.4",
      workDir: dir,
      clock: early,
      eventSink: sink,
      log: () => {},
    });
    await host.acquireLease({ leaseId: "L", jobId: "job", epoch: 1, ttlMs: 1000 });
    early.advance(999); // the timer fires now, one millisecond before the lease's time
    await new Promise((r) => setImmediate(r));
    expect(host.status().lease?.leaseId).toBe("L");
    early.advance(5);
    await expect.poll(() => host.status().lease).toBeNull();
    await host.close(100);
  });

  it("an expired lease is free for another job even before its timer fired", async () => {
    await agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 1, ttlMs: 1000 });
    // Move time without firing timers: the check on acquire must see the expiry itself.
    (clock as unknown as { t: number }).t += 5000;
    const other = await agent.acquireLease({ leaseId: "X", jobId: "other", epoch: 1, ttlMs: 1000 });
    expect(other.lease?.leaseId).toBe("X");
  });

  it("records a preemption once and publishes it to both topics with the lease's job", async () => {
    await agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 4, ttlMs: 10_000 });
    agent.reportPreemption("test");
    agent.reportPreemption("test again");
    await sink.waitFor((e) => e.topic === "gangway-preemption-notices");
    expect(sink.events.map((e) => e.topic).sort()).toEqual([
      "gangway-host-events",
      "gangway-preemption-notices",
    ]);
    expect(sink.events[0]?.event).toMatchObject({
      kind: "preempted",
      jobId: "job",
      epoch: 4,
      reason: "test",
    });
    expect(agent.status().state).toBe("preempted");
    await expect(agent.startRun(run({ epoch: 4 }))).rejects.toMatchObject({ name: "AgentStopping" });
  });

  it("heartbeats while a run lasts, and goes quiet once its lease holder cancels it", async () => {
    await agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 2, ttlMs: 3_600_000 });
    await agent.startRun(run({ epoch: 2, attempt: 7, hostIndex: 1, heartbeatMs: 5000 }));
    const beats = () => sink.events.filter((e) => e.event.kind === "heartbeat");
    clock.advance(4999);
    expect(beats()).toHaveLength(0);
    clock.advance(1);
    await sink.waitFor((e) => e.event.kind === "heartbeat");
    expect(beats()[0]?.event).toMatchObject({
      jobId: "job",
      attempt: 7,
      epoch: 2,
      hostIndex: 1,
      leaseId: "L",
    });
    expect(beats()[0]?.topic).toBe("gangway-host-events");
    clock.advance(5000);
    await expect.poll(() => beats().length).toBe(2);
    await agent.cancel({ leaseId: "L", epoch: 2, graceMs: 100 });
    clock.advance(50_000);
    expect(sink.events.map((e) => e.event.kind)).toEqual(["heartbeat", "heartbeat"]);
  });

  it("repeats the end of a run that ended by itself while its lease holds, then goes quiet", async () => {
    await agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 2, ttlMs: 3_600_000 });
    await agent.startRun(run({ epoch: 2, attempt: 7, argv: ["true"], heartbeatMs: 5000 }));
    const ends = () => sink.events.filter((e) => e.event.kind === "exited");
    await expect.poll(() => ends().length, { timeout: 10_000 }).toBe(1);
    // A lost end event still arrives, and the control plane keeps the lease while others run.
    clock.advance(5000);
    await expect.poll(() => ends().length).toBe(2);
    expect(ends()[1]?.event).toMatchObject({ jobId: "job", attempt: 7, exitCode: 0, cancelled: false });
    expect(ends()[1]?.event.eventId).not.toBe(ends()[0]?.event.eventId);
    expect(sink.events.filter((e) => e.event.kind === "heartbeat")).toEqual([]);
    await agent.releaseLease({ leaseId: "L", epoch: 2, graceMs: 100 });
    clock.advance(50_000);
    expect(ends()).toHaveLength(2);
  });

  it("asks the metadata endpoint when a workload fails, not when it succeeds or is cancelled", async () => {
    let asked = 0;
    const probing = new HostAgent({
      address: "127.0.1.3",
      workDir: dir,
      clock,
      eventSink: sink,
      log: () => {},
      metadataPreempted: async () => {
        asked++;
        return true;
      },
    });
    await probing.acquireLease({ leaseId: "L", jobId: "job", epoch: 1, ttlMs: 3_600_000 });
    await probing.startRun(run({ argv: ["sh", "-c", "exit 3"] }));
    const failed = await sink.waitFor((e) => e.event.kind === "exited" && e.event.exitCode === 3);
    expect(failed.metadataPreempted).toBe(true);
    await probing.startRun(run({ attempt: 2, argv: ["true"] }));
    const ok = await sink.waitFor((e) => e.event.kind === "exited" && e.event.attempt === 2);
    expect(ok.metadataPreempted).toBeUndefined();
    expect(asked).toBe(1);
    await probing.close(100);
  });

  it("keeps publishing failures away from callers", async () => {
    const failing = new HostAgent({
      address: "127.0.1.2",
      workDir: dir,
      clock,
      eventSink: {
        publish: async () => {
          throw new Error("broker down");
        },
      },
      log: () => {},
    });
    await failing.acquireLease({ leaseId: "L", jobId: "job", epoch: 1, ttlMs: 10_000 });
    const r = await failing.startRun(run({ argv: ["true"] }));
    expect(r.started).toBe(true);
    await expect(failing.close(100)).resolves.toBeUndefined();
  });
});

describe("HostAgent leftovers", () => {
  // A zombie nobody reaps (its parent gone) holds nothing: it counts as gone.
  const alive = (pid: number) => !["Z", "X", undefined].includes(readProc(pid)?.state);

  it("ends what a workload left running in its group once its leader exits", async () => {
    await agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 1, ttlMs: 60_000 });
    // The leader exits at once; the sleep it started stays in its group (its pid is the result).
    const script = 'sleep 300 & echo $! > "$GANGWAY_RESULT_FILE"; exit 0';
    await agent.startRun(run({ argv: ["sh", "-c", script] }));
    const end = await sink.waitFor((e) => e.event.kind === "exited");
    const straggler = Number(end.result);
    expect(straggler).toBeGreaterThan(0);
    expect(end).toMatchObject({ exitCode: 0, cancelled: false });
    expect(alive(straggler)).toBe(false);
  });

  it("a Cancel that comes while a natural exit is being recorded leaves that exit as it was", async () => {
    await agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 1, ttlMs: 60_000 });
    // The leader exits 3 at once and leaves a sleep behind. Recording the exit ends that sleep
    // first; that first terminate is held until the Cancel has come.
    const real = Workload.prototype.terminate;
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let calls = 0;
    const terminate = vi.spyOn(Workload.prototype, "terminate").mockImplementation(async function (
      this: Workload,
      graceMs: number,
    ) {
      if (++calls === 1) await gate;
      return real.call(this, graceMs);
    });
    try {
      const script = 'sleep 300 & echo $! > "$GANGWAY_RESULT_FILE"; exit 3';
      await agent.startRun(run({ argv: ["sh", "-c", script] }));
      await expect.poll(() => calls, { timeout: 10_000 }).toBe(1);
      const cancelling = agent.cancel({ leaseId: "L", epoch: 1, graceMs: 5000 });
      await expect.poll(() => calls).toBe(2);
      expect(sink.events.filter((e) => e.event.kind === "exited")).toEqual([]);
      release();
      const cancelled = await cancelling;
      expect(cancelled.leftoverPids).toEqual([]);
      expect(cancelled.status?.run).toMatchObject({ exited: true, exitCode: 3, cancelled: false });
      const ends = sink.events.filter((e) => e.event.kind === "exited");
      expect(ends).toHaveLength(1);
      expect(ends[0]?.event).toMatchObject({ exitCode: 3, cancelled: false });
      const straggler = Number(ends[0]?.event.result);
      expect(straggler).toBeGreaterThan(0);
      expect(alive(straggler)).toBe(false);
    } finally {
      terminate.mockRestore();
    }
  });

  it("reports processes that outlive SIGKILL and takes no lease or run beside them", async () => {
    await agent.acquireLease({ leaseId: "L", jobId: "job", epoch: 1, ttlMs: 60_000 });
    const started = await agent.startRun(run());
    // A process stuck in uninterruptible I/O cannot be made here: the group's end is made to say so.
    let stuck = true;
    const terminate = vi.spyOn(Workload.prototype, "terminate").mockImplementation(async function (
      this: Workload,
    ) {
      await terminateGroup(this.pid, { graceMs: 0 });
      return stuck ? [started.pid] : [];
    });
    const members = vi
      .spyOn(Workload.prototype, "members")
      .mockImplementation(() => (stuck ? [started.pid] : []));
    try {
      const released = await agent.releaseLease({ leaseId: "L", epoch: 1, graceMs: 100 });
      expect(released).toMatchObject({ held: false, leftoverPids: [started.pid] });
      // The freed host reports them again to the lease that asks, and refuses everyone else.
      expect((await agent.releaseLease({ leaseId: "L", epoch: 1, graceMs: 0 })).leftoverPids).toEqual([
        started.pid,
      ]);
      expect((await agent.releaseLease({ leaseId: "other", epoch: 1, graceMs: 0 })).leftoverPids).toEqual([]);
      await expect(
        agent.acquireLease({ leaseId: "M", jobId: "next", epoch: 1, ttlMs: 60_000 }),
      ).rejects.toMatchObject({
        name: "HostNotClean",
        message: expect.stringContaining(String(started.pid)),
      });
      stuck = false;
      expect((await agent.releaseLease({ leaseId: "L", epoch: 1, graceMs: 0 })).leftoverPids).toEqual([]);
      await expect(
        agent.acquireLease({ leaseId: "M", jobId: "next", epoch: 1, ttlMs: 60_000 }),
      ).resolves.toMatchObject({ held: true });
    } finally {
      terminate.mockRestore();
      members.mockRestore();
    }
  });
});
