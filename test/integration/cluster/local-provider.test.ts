import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { layoutLocalCluster, parseClusterSpec } from "../../../core/cluster-spec.js";
import { type AgentClient, createAgentClient } from "../../../functions/clients/agent/client.js";
import { createJsonLinesEventSink, type HostEvent } from "../../../infra/agent/events.js";
import { groupMembers } from "../../../infra/agent/process-group.js";
import { createLocalProvider, type LocalProvider } from "../../../infra/local/cluster/local-provider.js";
import { providerPort } from "../../../infra/local/stack-wiring.js";

const TOKEN = "cluster-test-token";
let dir: string;
let provider: LocalProvider | undefined;
const clients: AgentClient[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gangway-cluster-it-"));
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await provider?.close();
  provider = undefined;
  rmSync(dir, { recursive: true, force: true });
});

const clientOf = (agent: string | undefined) => {
  const c = createAgentClient(agent ?? "missing:1", { token: TOKEN, deadlineMs: 5000 });
  clients.push(c);
  return c;
};
const eventsIn = (file: string): Array<{ topic: string; event: HostEvent }> => {
  try {
    return readFileSync(file, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { topic: string; event: HostEvent });
  } catch {
    return [];
  }
};

describe("local provider", () => {
  it("brings up the layout gangway plan shows, one reachable agent per host address", async () => {
    provider = await createLocalProvider({ spec: "v4-16x2,v4-8x1", token: TOKEN, workDir: dir });
    const slices = provider.listSlices();
    const planned = layoutLocalCluster(parseClusterSpec("v4-16x2,v4-8x1"));
    expect(slices.map((s) => ({ ...s, hosts: s.hosts.map(({ agent: _, ...h }) => h) }))).toEqual(planned);
    for (const slice of slices) {
      for (const host of slice.hosts) {
        expect(host.agent?.startsWith(`${host.address}:`)).toBe(true);
        const health = await clientOf(host.agent).health();
        expect(health).toMatchObject({ ok: true, address: host.address, agent: host.agent });
      }
    }
  });

  it("adds requested slices after the provisioning delay, fresh names and addresses, up to the quota", async () => {
    provider = await createLocalProvider({
      spec: "v4-16x1",
      token: TOKEN,
      workDir: dir,
      provisioningDelayMs: 200,
      quota: { maxSlices: { "v4-16": 3 }, maxHosts: 7 },
    });
    const asked = provider.requestSlices("v4-16", 5);
    // Granted up to the quota (3 v4-16 slices in all), pending until the delay has passed.
    expect(provider.pendingSlices()).toHaveLength(2);
    expect(provider.listSlices()).toHaveLength(1);
    const added = await asked;
    expect(added.map((s) => s.name)).toEqual(["v4-16-1", "v4-16-2"]);
    expect(provider.pendingSlices()).toEqual([]);
    const addresses = provider.listSlices().flatMap((s) => s.hosts.map((h) => h.address));
    expect(new Set(addresses).size).toBe(6);
    expect((await clientOf(added[1]?.hosts[1]?.agent).health()).ok).toBe(true);
    // Quota reached for v4-16; the host quota (7) leaves room for one CPU host only.
    expect(await provider.requestSlices("v4-16", 1)).toEqual([]);
    const cpu = await provider.requestSlices("cpu", 4);
    expect(cpu.map((s) => [s.name, s.hosts.length])).toEqual([["cpu-0", 1]]);
    await expect(provider.requestSlices("v4-7", 1)).rejects.toMatchObject({ name: "UnknownAcceleratorType" });
  });

  it("counts a slice whose agents are starting as pending until it is live: the quota holds", async () => {
    provider = await createLocalProvider({
      token: TOKEN,
      workDir: dir,
      provisioningDelayMs: 0,
      quota: { maxSlices: { "v4-16": 1 } },
    });
    const first = provider.requestSlices("v4-16", 1);
    // Until the slice is listed it is pending: never neither.
    while (provider.pendingSlices().length > 0) {
      expect(provider.listSlices()).toEqual([]);
      await new Promise((r) => setImmediate(r));
    }
    const second = provider.requestSlices("v4-16", 1);
    expect((await first).map((s) => s.name)).toEqual(["v4-16-0"]);
    expect(await second).toEqual([]);
    expect(provider.listSlices().map((s) => s.name)).toEqual(["v4-16-0"]);
  });

  it("the autoscaler port counts cpu/gpu requests in hosts: asked twice for 4, 4 hosts come", async () => {
    provider = await createLocalProvider({ token: TOKEN, workDir: dir, provisioningDelayMs: 600_000 });
    const port = providerPort(provider, () => {});
    await port.requestSlices("cpu", 4);
    await port.requestSlices("cpu", 4);
    await port.requestSlices("gpu-h100-8", 2);
    await port.requestSlices("gpu-h100-8", 3);
    await port.requestSlices("v4-16", 2);
    await port.requestSlices("v4-16", 2);
    const hostsOf = (type: string) =>
      provider?.pendingSlices().reduce((n, p) => n + (p.type === type ? p.hosts : 0), 0);
    expect(hostsOf("cpu")).toBe(4);
    expect(hostsOf("gpu-h100-8")).toBe(3);
    expect(provider.pendingSlices().filter((p) => p.type === "v4-16")).toHaveLength(2);
    expect(await port.pendingSlices?.("cpu")).toBe(4);
    expect(await port.pendingSlices?.("v4-16")).toBe(2);
  });

  it("the autoscaler port logs what came up or failed, not every request the quota leaves empty", async () => {
    provider = await createLocalProvider({
      spec: "v4-16x1",
      token: TOKEN,
      workDir: dir,
      provisioningDelayMs: 0,
      quota: { maxSlices: { "v4-16": 1 } },
    });
    const lines: string[] = [];
    const port = providerPort(provider, (l) => lines.push(l));
    // At the quota: every poll's request adds nothing, and says nothing.
    for (let i = 0; i < 3; i++) await port.requestSlices("v4-16", 1);
    await port.requestSlices("v4-7", 1);
    await port.requestSlices("v4-8", 1);
    const up = "autoscaler: 1 v4-8 slice(s) up";
    const failed = (l: string) => l.startsWith("autoscaler: ") && l.includes('unknown TPU type "v4-7"');
    await vi.waitFor(() => expect(lines.includes(up) && lines.some(failed)).toBe(true), {
      timeout: 30_000,
      interval: 20,
    });
    expect(lines).toHaveLength(2);
  });

  it("releases slices: their workloads stop and their agents go away", async () => {
    provider = await createLocalProvider({ spec: "v4-8x2", token: TOKEN, workDir: dir });
    const [first] = provider.listSlices();
    const c = clientOf(first?.hosts[0]?.agent);
    await c.acquireLease({ leaseId: "l", jobId: "j", epoch: 1, ttlMs: 60_000 });
    const run = await c.run({
      leaseId: "l",
      epoch: 1,
      jobId: "j",
      attempt: 1,
      sliceIndex: 0,
      sliceName: first?.name ?? "",
      hostIndex: 0,
      argv: ["sleep", "300"],
    });
    expect(await provider.releaseSlices([first?.name ?? "", "no-such-slice"])).toEqual([first?.name]);
    expect(groupMembers(run.pid)).toEqual([]);
    expect(provider.listSlices().map((s) => s.name)).toEqual(["v4-8-1"]);
    await expect(c.health()).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it("preemption: hosts and workloads vanish, notices name the attempt, a fresh slice comes back", async () => {
    const eventsFile = join(dir, "events.jsonl");
    provider = await createLocalProvider({
      spec: "v4-16x2",
      token: TOKEN,
      workDir: dir,
      provisioningDelayMs: 100,
      eventSink: createJsonLinesEventSink(eventsFile),
    });
    const victim = provider.listSlices()[1];
    const pids: number[] = [];
    for (const host of victim?.hosts ?? []) {
      const c = clientOf(host.agent);
      await c.acquireLease({ leaseId: "exec-1", jobId: "train", epoch: 3, ttlMs: 60_000 });
      const r = await c.run({
        leaseId: "exec-1",
        epoch: 3,
        jobId: "train",
        attempt: 3,
        sliceIndex: 1,
        sliceName: victim?.name ?? "",
        hostIndex: host.workerId,
        // A graceful shutdown would run the trap; a vanishing VM gives it no chance.
        argv: ["sh", "-c", `trap "touch ${join(dir, "graceful")}; exit 0" TERM; sleep 300 & wait`],
      });
      pids.push(r.pid);
    }
    const injected = await provider.preemptSlice("v4-16-1");
    expect(injected.notices).toHaveLength(2);
    expect(injected.notices[1]).toMatchObject({
      kind: "preempted",
      jobId: "train",
      attempt: 3,
      epoch: 3,
      leaseId: "exec-1",
      sliceName: "v4-16-1",
      sliceIndex: 1,
      hostIndex: 1,
      address: victim?.hosts[1]?.address,
    });
    // Killed like a VM: no workload left, the agent does not answer, it reported no exit itself.
    for (const pid of pids) expect(groupMembers(pid)).toEqual([]);
    expect(existsSync(join(dir, "graceful"))).toBe(false);
    await expect(clientOf(victim?.hosts[0]?.agent).health()).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
    const published = eventsIn(eventsFile);
    expect(published.filter((e) => e.topic === "gangway-preemption-notices")).toHaveLength(2);
    expect(published.filter((e) => e.topic === "gangway-host-events").map((e) => e.event.kind)).toEqual([
      "preempted",
      "preempted",
    ]);
    expect(provider.listSlices().map((s) => s.name)).toEqual(["v4-16-0"]);
    const fresh = await injected.replacement;
    expect(fresh?.name).toBe("v4-16-2");
    expect(fresh?.hosts.map((h) => h.address)).toEqual(["127.0.1.5", "127.0.1.6"]);
    expect(provider.listSlices().map((s) => s.name)).toEqual(["v4-16-0", "v4-16-2"]);
    expect((await clientOf(fresh?.hosts[0]?.agent).status()).state).toBe("idle");
    await expect(provider.preemptSlice("v4-16-1")).rejects.toMatchObject({ name: "UnknownSlice" });
  });

  it("fails to start as a whole when its agents cannot serve", async () => {
    await expect(
      createLocalProvider({
        spec: "v4-16x2",
        token: TOKEN,
        workDir: dir,
        agentOptions: { tls: { cert: "not a cert", key: "not a key" } },
      }),
    ).rejects.toThrow();
  });

  it("close stops every agent and workload, and cancels slices still being provisioned", async () => {
    provider = await createLocalProvider({
      spec: "cpux3",
      token: TOKEN,
      workDir: dir,
      provisioningDelayMs: 60_000,
    });
    const pending = provider.requestSlices("cpu", 2);
    const pids: number[] = [];
    for (const host of provider.listSlices()[0]?.hosts ?? []) {
      const c = clientOf(host.agent);
      await c.acquireLease({ leaseId: "l", jobId: "j", epoch: 1, ttlMs: 60_000 });
      const r = await c.run({
        ...{ leaseId: "l", epoch: 1, jobId: "j", attempt: 1, sliceIndex: 0, sliceName: "cpu-0" },
        hostIndex: host.workerId,
        argv: ["sleep", "300"],
      });
      pids.push(r.pid);
    }
    await provider.close();
    provider = undefined;
    expect(await pending).toEqual([]);
    for (const pid of pids) expect(groupMembers(pid)).toEqual([]);
  });
});
