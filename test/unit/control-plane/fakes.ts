import type { ClusterSlice } from "../../../core/cluster-spec.js";
import { layoutLocalCluster, parseClusterSpec } from "../../../core/cluster-spec.js";
import { createMemoryResultsStore } from "../../../functions/clients/results-store.js";
import type { ControlPlaneDeps } from "../../../functions/deps.js";
import type { AgentLease, AgentPort, AgentRunInfo, TaskTokens } from "../../../functions/ports.js";

/** A fake host agent: leases and runs in memory, with switches to make it misbehave. */
export class FakeAgent implements AgentPort {
  lease: AgentLease | null = null;
  run_: (AgentRunInfo & { env: Record<string, string>; argv: string[] }) | null = null;
  unreachable = false;
  refuseLeases = false;
  startError: string | undefined;
  preempted = false;
  /**
   * A process of the run will not die: cancel and release report it (`leftoverPids`), as the
   * real agent does, and the run stays alive under a kept lease.
   */
  stubborn = false;
  /** Answer the host's status with a release, as real agents do (older ones do not). */
  statusOnRelease = true;
  calls: string[] = [];
  constructor(readonly address: string) {}

  private check(method: string) {
    this.calls.push(method);
    if (this.unreachable) throw Object.assign(new Error(`${method}: UNAVAILABLE`), { code: 14 });
  }
  async health() {
    this.check("health");
    return { ok: true, preempted: this.preempted, address: this.address };
  }
  async acquireLease(r: { leaseId: string; jobId: string; epoch: number; ttlMs: number }) {
    this.check("acquireLease");
    const takeover = this.lease?.jobId === r.jobId && r.epoch > this.lease.epoch;
    if (this.refuseLeases || (this.lease && this.lease.leaseId !== r.leaseId && !takeover))
      return { held: false };
    this.lease = { leaseId: r.leaseId, jobId: r.jobId, epoch: r.epoch, expiresAtMs: Date.now() + r.ttlMs };
    return { held: true };
  }
  async renewLease(r: { leaseId: string; epoch: number; ttlMs: number }) {
    this.check("renewLease");
    return { held: this.lease?.leaseId === r.leaseId };
  }
  /** As the real agent: a command naming another lease than the one held is refused. */
  private requireLease(method: string, r: { leaseId: string; epoch: number }) {
    if (this.lease?.leaseId !== r.leaseId || this.lease.epoch !== r.epoch)
      throw Object.assign(new Error(`${method}: FAILED_PRECONDITION`), { code: 9 });
  }
  async releaseLease(r: { leaseId: string; epoch: number; graceMs?: number }) {
    this.check("releaseLease");
    if (this.lease) {
      this.requireLease("releaseLease", r);
      this.lease = null;
      if (this.run_ && !this.stubborn) this.run_ = { ...this.run_, exited: true, cancelled: true };
    }
    // As the real agent: asked again on a free host, it reports the survivors again.
    const leftoverPids = this.leftoverPids();
    return this.statusOnRelease ? { held: false, status: this.snapshot(), leftoverPids } : { held: false };
  }
  private leftoverPids(): number[] {
    return this.stubborn && this.run_ ? [4242] : [];
  }
  async run(r: Parameters<AgentPort["run"]>[0]) {
    this.check("run");
    const l = this.lease;
    if (r.takeOverTtlMs && l && l.jobId === r.jobId && r.epoch > l.epoch)
      this.lease = {
        leaseId: r.leaseId,
        jobId: r.jobId,
        epoch: r.epoch,
        expiresAtMs: Date.now() + r.takeOverTtlMs,
      };
    if (this.lease?.leaseId !== r.leaseId)
      throw Object.assign(new Error("run: FAILED_PRECONDITION"), { code: 9 });
    if (this.startError)
      return {
        started: false,
        alreadyRunning: false,
        errorJson: JSON.stringify({ name: "WorkloadStartFailed", message: this.startError }),
      };
    this.run_ = {
      jobId: r.jobId,
      attempt: r.attempt,
      epoch: r.epoch,
      sliceIndex: r.sliceIndex,
      hostIndex: r.hostIndex,
      exited: false,
      exitCode: 0,
      hasExitCode: false,
      signal: "",
      cancelled: false,
      resultBytes: 0,
      resultJson: "",
      errorJson: "",
      env: r.env ?? {},
      argv: r.argv,
    };
    return { started: true, alreadyRunning: false, errorJson: "" };
  }
  async cancel(r: { leaseId: string; epoch: number; graceMs?: number }) {
    this.check("cancel");
    this.requireLease("cancel", r);
    const wasRunning = !!this.run_ && !this.run_.exited;
    if (this.run_ && !this.stubborn) this.run_ = { ...this.run_, exited: true, cancelled: true };
    const leftoverPids = this.leftoverPids();
    return this.statusOnRelease
      ? { wasRunning, leftoverPids, status: this.snapshot() }
      : { wasRunning, leftoverPids };
  }
  async status() {
    this.check("status");
    return this.snapshot();
  }
  /** As the real agent: a freed host shows no run. */
  private snapshot() {
    const run = this.lease ? this.run_ : null;
    return {
      state: run ? "running" : "idle",
      lease: this.lease,
      run,
      preempted: this.preempted,
    };
  }
  async readOutput() {
    this.check("readOutput");
    return {
      stdout: Buffer.from(`out of ${this.address}\n`),
      stderr: Buffer.from(""),
      stdoutTotal: 0,
      stderrTotal: 0,
    };
  }
  async readResult() {
    this.check("readResult");
    return { present: true, resultJson: JSON.stringify({ big: "x".repeat(10) }) };
  }
}

/** A fake world: a cluster of fake agents, a provider over it, a memory store, recorded tokens. */
export function fakeWorld(spec = "v4-16x2") {
  let cluster: ClusterSlice[] = layoutLocalCluster(parseClusterSpec(spec)).map((s) => ({
    ...s,
    hosts: s.hosts.map((h) => ({ ...h, agent: `${h.address}:9000` })),
  }));
  const agents = new Map<string, FakeAgent>();
  for (const s of cluster) for (const h of s.hosts) agents.set(h.agent ?? "", new FakeAgent(h.address));
  const sent: Array<{
    kind: "succeed" | "fail" | "heartbeat";
    token: string;
    error?: string;
    cause?: string;
    output?: unknown;
  }> = [];
  const staleTokens = new Set<string>();
  const tokens: TaskTokens = {
    succeed: async (token, output) => {
      sent.push({ kind: "succeed", token, output });
      return staleTokens.has(token) ? "stale" : "sent";
    },
    fail: async (token, error, cause) => {
      sent.push({ kind: "fail", token, error, cause });
      return staleTokens.has(token) ? "stale" : "sent";
    },
    heartbeat: async (token) => {
      sent.push({ kind: "heartbeat", token });
      return "sent";
    },
  };
  const requested: Array<[string, number]> = [];
  const released: Array<[string[], string]> = [];
  const started: Array<{ stateMachineArn: string; name: string; input: string }> = [];
  let now = 1_000_000;
  const deps: ControlPlaneDeps = {
    provider: {
      listSlices: async () => cluster,
      requestSlices: async (type, n) => {
        requested.push([type, n]);
      },
      releaseSlices: async (slices, reason) => {
        released.push([slices.map((s) => s.name), reason]);
      },
    },
    agents: {
      agent: (address) => {
        const a = agents.get(address);
        if (!a) throw new Error(`no agent ${address}`);
        return a;
      },
    },
    store: createMemoryResultsStore(),
    tokens,
    clock: { now: () => now },
    executions: {
      start: async (r) => {
        started.push(r);
        return {
          executionArn: `arn:aws:states:us-east-1:000000000000:execution:gangway-multislice:${r.name}`,
        };
      },
    },
  };
  return {
    deps,
    agents,
    sent,
    staleTokens,
    requested,
    released,
    started,
    get cluster() {
      return cluster;
    },
    setCluster(next: ClusterSlice[]) {
      cluster = next;
    },
    advance(ms: number) {
      now += ms;
    },
    agentOf(slice: number, host: number) {
      const a = agents.get(cluster[slice]?.hosts[host]?.agent ?? "");
      if (!a) throw new Error("no such agent");
      return a;
    },
  };
}
