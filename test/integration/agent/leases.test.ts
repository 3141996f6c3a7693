import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AgentCallError } from "../../../functions/clients/agent/client.js";
import {
  alive,
  lease,
  liveGroup,
  pidsIn,
  publishedCancelledExits,
  runParams,
  startTestAgent,
  type TestAgent,
  until,
} from "./helpers.js";

let agent: TestAgent | undefined;
afterEach(async () => {
  await agent?.close();
  agent = undefined;
});

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "OK",
    (e: AgentCallError) => e.code,
  );
const FAILED_PRECONDITION = 9;

describe("agent leases", () => {
  it("frees the host and kills the workload when the lease expires unrenewed", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease("lease-a", 1, "job-a", 30_000));
    const pidFile = join(agent.workDir, "pids");
    const run = await c.run(
      runParams(["sh", "-c", `sleep 300 & echo $$ $! > ${pidFile}; wait`], { graceMs: 200 }),
    );
    expect(run.started).toBe(true);
    const pids = await until(() => (pidsIn(pidFile).length === 2 ? pidsIn(pidFile) : undefined));
    // The control plane "dies": its last renewal gives the lease a short life, and none follows.
    await c.renewLease({ leaseId: "lease-a", epoch: 1, ttlMs: 300 });
    const event = await agent.waitForEvent((e) => e.event.kind === "lost");
    expect(event).toMatchObject({
      jobId: "job-a",
      attempt: 1,
      epoch: 1,
      leaseId: "lease-a",
      sliceName: "v4-16-0",
    });
    expect(event.reason).toContain("expired");
    expect(alive(pids)).toEqual([]);
    expect(liveGroup(run.pid)).toEqual([]);
    const status = await c.status();
    expect(status.state).toBe("idle");
    expect(status.lease).toBeNull();
    // The host is free: another job may lease it now.
    await expect(c.acquireLease(lease("lease-b", 1, "job-b"))).resolves.toMatchObject({ held: true });
  });

  it("keeps a renewed lease and its run alive", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    const first = await c.acquireLease(lease("lease-a", 1, "job-a", 1000));
    const renewed = await c.renewLease({ leaseId: "lease-a", epoch: 1, ttlMs: 60_000 });
    expect(renewed.lease?.expiresAtMs).toBeGreaterThan(first.lease?.expiresAtMs ?? 0);
    expect((await c.status()).state).toBe("leased");
  });

  it("refuses a stale epoch and another lease with FAILED_PRECONDITION", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease("exec-1", 1, "job-a"));
    const oldRun = await c.run(runParams(["sleep", "300"], { leaseId: "exec-1" }));
    // The next attempt of the same job takes the host over with a newer epoch.
    await c.acquireLease(lease("exec-1", 2, "job-a"));
    expect(liveGroup(oldRun.pid)).toEqual([]);
    // Commands of the older attempt are refused and run nothing.
    expect(await codeOf(c.run(runParams(["sleep", "300"], { leaseId: "exec-1", epoch: 1 })))).toBe(
      FAILED_PRECONDITION,
    );
    expect(await codeOf(c.cancel({ leaseId: "exec-1", epoch: 1 }))).toBe(FAILED_PRECONDITION);
    expect(await codeOf(c.renewLease({ leaseId: "exec-1", epoch: 1, ttlMs: 1000 }))).toBe(
      FAILED_PRECONDITION,
    );
    expect(await codeOf(c.releaseLease({ leaseId: "exec-1", epoch: 1 }))).toBe(FAILED_PRECONDITION);
    expect(await codeOf(c.acquireLease(lease("exec-1", 1, "job-a")))).toBe(FAILED_PRECONDITION);
    // Another job cannot take a leased host, whatever its epoch.
    expect(await codeOf(c.acquireLease(lease("exec-9", 99, "job-b")))).toBe(FAILED_PRECONDITION);
    const status = await c.status();
    expect(status.lease).toMatchObject({ leaseId: "exec-1", epoch: 2 });
    expect(status.state).toBe("leased");
    const refused = await c
      .run(runParams(["true"], { leaseId: "exec-9", epoch: 99 }))
      .catch((e: AgentCallError) => e);
    expect((refused as AgentCallError).remote?.name).toBe("LeaseConflict");
  });

  it("release cancels the run and frees the host", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    const run = await c.run(runParams(["sleep", "300"]));
    const released = await c.releaseLease({ leaseId: "lease-a", epoch: 1, graceMs: 500 });
    expect(liveGroup(run.pid)).toEqual([]);
    // The answer carries the host afterwards, so a teardown needs no Status call.
    expect(released.status).toMatchObject({ state: "idle", lease: null, run: null });
    expect((await c.status()).state).toBe("idle");
    // Releasing a free host is a no-op.
    await expect(c.releaseLease({ leaseId: "lease-a", epoch: 1 })).resolves.toMatchObject({ held: false });
    // The holder learnt the end from its reply; nothing is published for it.
    await c.acquireLease(lease());
    expect(await publishedCancelledExits(agent)).toEqual([]);
  });
});
