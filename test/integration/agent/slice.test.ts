import { afterEach, describe, expect, it } from "vitest";
import { groupMembers } from "../../../infra/agent/process-group.js";
import { lease, runParams, startTestAgent, type TestAgent } from "./helpers.js";

let agents: TestAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.map((a) => a.close()));
  agents = [];
});

/** Three hosts of one slice on their own addresses; the head polls its peers quickly. */
async function startSlice(): Promise<TestAgent[]> {
  agents = await Promise.all(
    ["127.0.1.1", "127.0.1.2", "127.0.1.3"].map((ip) =>
      startTestAgent({ listen: `${ip}:0`, sliceMonitor: { intervalMs: 50, failuresToLost: 2 } }),
    ),
  );
  for (const a of agents) await a.client.acquireLease(lease());
  return agents;
}

describe("the slice head watches its slice", () => {
  it("reports every host's state, and a host that vanishes as lost", async () => {
    const [head, peer1, peer2] = await startSlice();
    if (!head || !peer1 || !peer2) throw new Error("three agents expected");
    const peerRuns = await Promise.all(
      [peer1, peer2].map((p, i) => p.client.run(runParams(["sleep", "300"], { hostIndex: i + 1 }))),
    );
    await head.client.run(
      runParams(["sleep", "300"], { slicePeers: [peer1.server.address, peer2.server.address] }),
    );
    await expect
      .poll(async () => (await head.client.sliceStatus()).peers.map((p) => p.status?.state))
      .toEqual(["running", "running"]);
    const running = await head.client.sliceStatus();
    expect(running.state).toBe("running");
    expect(running.peers.map((p) => [p.agent, p.hostIndex, p.reachable])).toEqual([
      [peer1.server.address, 1, true],
      [peer2.server.address, 2, true],
    ]);

    // Host 2's VM dies without a word: the head notices and reports it lost.
    await peer2.server.kill();
    expect(groupMembers(peerRuns[1]?.pid ?? 0)).toEqual([]);
    const lost = await head.waitForEvent((e) => e.event.kind === "lost");
    expect(lost).toMatchObject({
      agent: peer2.server.address,
      address: "127.0.1.3",
      jobId: "job-a",
      attempt: 1,
      epoch: 1,
      sliceName: "v4-16-0",
      hostIndex: 2,
    });
    const degraded = await head.client.sliceStatus();
    expect(degraded.state).toBe("degraded");
    expect(degraded.peers.map((p) => p.reachable)).toEqual([true, false]);
    expect(head.events().filter((e) => e.event.kind === "lost")).toHaveLength(1);
  });

  it("says the slice exited once every host's run of this attempt has", async () => {
    const [head, peer1, peer2] = await startSlice();
    if (!head || !peer1 || !peer2) throw new Error("three agents expected");
    // The head finishes first; its view of the slice keeps up until every host has finished.
    await head.client.run(runParams(["true"], { slicePeers: [peer1.server.address, peer2.server.address] }));
    await expect.poll(async () => (await head.client.status()).state).toBe("exited");
    expect((await head.client.sliceStatus()).state).toBe("running");
    await Promise.all(
      [peer1, peer2].map((p, i) => p.client.run(runParams(["sleep", "0.2"], { hostIndex: i + 1 }))),
    );
    await expect.poll(async () => (await head.client.sliceStatus()).state).toBe("exited");
    const done = await head.client.sliceStatus();
    expect(done.head?.run).toMatchObject({ exited: true, exitCode: 0 });
    expect(done.peers.map((p) => p.status?.run?.hostIndex)).toEqual([1, 2]);
    // A host that is not a slice head (no peers given) has no slice view.
    expect((await peer1.client.sliceStatus()).state).toBe("idle");
  });
});
