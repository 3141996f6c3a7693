import { randomUUID } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import {
  type ClusterPoolSpec,
  type ClusterSlice,
  layoutLocalCluster,
  parseClusterSpec,
} from "../../../core/cluster-spec.js";
import {
  discardEvents,
  type EventSink,
  HOST_EVENTS_TOPIC,
  type HostEvent,
  PREEMPTION_NOTICES_TOPIC,
} from "../../agent/events.js";
import { type AgentServerHandle, type AgentServerOptions, startAgentServer } from "../../agent/server.js";
import { UnknownSlice } from "./errors.js";
import type { ClusterProvider } from "./provider.js";

/** Limits of the local autoscaler. */
export interface LocalQuota {
  /** Most hosts alive or being provisioned at once. */
  maxHosts?: number;
  /** Most slices of a type (`v4-16`, `cpu`, `gpu-h100-8`) alive or being provisioned at once. */
  maxSlices?: Record<string, number>;
}

/** Options of {@link createLocalProvider}. */
export interface LocalProviderOptions {
  /** Initial slices, as a cluster spec (`v4-16x2,v4-8x1`) … */
  spec?: string;
  /** … or parsed. Neither: an empty cluster that grows by `requestSlices`. */
  pools?: ClusterPoolSpec[];
  /** Bearer token of every agent. */
  token: string;
  /** Each host's agent keeps its runs under `<workDir>/hosts/<address>`. */
  workDir: string;
  eventSink?: EventSink;
  /** Time from a request (or a preemption) to the slices being up; the initial slices come at once. */
  provisioningDelayMs?: number;
  quota?: LocalQuota;
  /** Options every agent gets (grace, result limits, TLS …). */
  agentOptions?: Partial<Omit<AgentServerOptions, "listen" | "token" | "workDir" | "eventSink">>;
  log?: (line: string) => void;
}

/** What {@link LocalProvider.preemptSlice} did. */
export interface PreemptionInjected {
  slice: string;
  /** One notice per host, as published to the preemption-notices topic. */
  notices: HostEvent[];
  /** The replacement slice, once it is up (undefined if the provider closed first or quota forbade it). */
  replacement: Promise<ClusterSlice | undefined>;
}

/** The embedded cluster: simulated hosts on loopback addresses, each with a real agent. */
export interface LocalProvider extends ClusterProvider {
  /** Slices asked for and not up yet (being provisioned, or their agents starting). */
  pendingSlices(): Array<{ type: string; hosts: number; readyAt: number }>;
  /**
   * Preempt a slice as GCE would: its agents and workloads die at once (nothing more is heard from
   * them), a notice per host goes to the preemption-notices (and host-events) topic with the job and
   * attempt that ran there, and a fresh slice of the same type, under a new name, comes back after
   * the provisioning delay.
   */
  preemptSlice(name: string): Promise<PreemptionInjected>;
  /**
   * Kill one host's agent as `kill -9` would, and its workloads with it, and say nothing: no
   * notice, no event. What remains to notice it is the slice head's watch and the heartbeats.
   * The slice stays listed, one host short of answering.
   */
  killAgent(address: string): Promise<void>;
}

interface LiveSlice {
  slice: ClusterSlice;
  agents: AgentServerHandle[];
  /** Layout order: slices are listed in the order they were laid out, whatever came up first. */
  order: number;
}

interface Pending {
  type: string;
  hosts: number;
  readyAt: number;
  cancel: () => void;
}

/** One pool entry for `count` of `type`, parsed the way a cluster spec entry is. */
function poolFor(type: string, count: number): ClusterPoolSpec {
  const [pool] = parseClusterSpec(`${type}x${count}`);
  if (!pool) throw new UnknownSlice(`no pool for ${type}`);
  return pool;
}

/**
 * Bring up a local cluster: every host of every slice is an agent on its own loopback address
 * (127.0.1.x, as `layoutLocalCluster` lays them out) and an ephemeral port, all in this process;
 * workloads are real child processes.
 *
 * @example
 * const cluster = await createLocalProvider({ spec: "v4-16x2", token, workDir });
 * cluster.listSlices(); // [{name:"v4-16-0", hosts:[{address:"127.0.1.1", workerId:0, agent:"127.0.1.1:40111"}, …]}, …]
 * await cluster.close();
 */
export async function createLocalProvider(options: LocalProviderOptions): Promise<LocalProvider> {
  const delay = options.provisioningDelayMs ?? 0;
  const sink = options.eventSink ?? discardEvents;
  const log = options.log ?? (() => {});
  const live = new Map<string, LiveSlice>();
  const pending = new Set<Pending>();
  const perType = new Map<string, number>();
  let nextHost = 0;
  const order = new Map<string, number>();
  let closed = false;

  const hostsOf = (pool: ClusterPoolSpec) =>
    layoutLocalCluster([pool]).reduce((n, s) => n + s.hosts.length, 0);
  const countType = (type: string) =>
    [...live.values()].filter((s) => s.slice.type === type).length +
    [...pending].filter((p) => p.type === type).length;
  const countHosts = () =>
    [...live.values()].reduce((n, s) => n + s.slice.hosts.length, 0) +
    [...pending].reduce((n, p) => n + p.hosts, 0);

  /** Lay out one pool entry on fresh addresses with fresh names (never reused, so never confused). */
  const layout = (pool: ClusterPoolSpec): ClusterSlice[] => {
    const slices = layoutLocalCluster([pool], nextHost);
    for (const s of slices) {
      nextHost += s.hosts.length;
      const i = perType.get(s.type) ?? 0;
      perType.set(s.type, i + 1);
      s.name = `${s.type}-${i}`;
      order.set(s.name, order.size);
    }
    return slices;
  };

  const inflight = new Set<Promise<unknown>>();
  const bringUp = (slice: ClusterSlice, entry?: Pending): Promise<ClusterSlice> => {
    const p = startSlice(slice, entry);
    inflight.add(p);
    void p.catch(() => {}).finally(() => inflight.delete(p));
    return p;
  };
  /**
   * Start a slice's agents. Its pending `entry` (if any) stays counted until the slice is live or
   * has failed: a slice coming up is neither listed yet nor free quota.
   */
  const startSlice = async (slice: ClusterSlice, entry?: Pending): Promise<ClusterSlice> => {
    const started = await Promise.allSettled(
      slice.hosts.map(async (host) => {
        const dir = join(options.workDir, "hosts", host.address);
        await mkdir(dir, { recursive: true });
        return startAgentServer({
          graceMs: 2000,
          log,
          ...options.agentOptions,
          listen: `${host.address}:0`,
          token: options.token,
          workDir: dir,
          lockfilePath: join(dir, "libtpu_lockfile"),
          eventSink: sink,
          preemptionProbe: false,
        });
      }),
    );
    const agents = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
    // A slice comes up whole or not at all, and never after the provider closed.
    if (failed || closed) {
      if (entry) pending.delete(entry);
      await Promise.all(agents.map((a) => a.close()));
      throw failed ? failed.reason : new Error("local cluster closed while the slice came up");
    }
    slice.hosts.forEach((h, i) => {
      h.agent = agents[i]?.address;
    });
    // Pending to live in one step: never counted twice, never missed.
    if (entry) pending.delete(entry);
    live.set(slice.name, { slice, agents, order: order.get(slice.name) ?? 0 });
    return slice;
  };

  /** Provision `slices` after the delay; resolves with those that came up (none if closed first). */
  const provision = (slices: ClusterSlice[]): Promise<ClusterSlice[]> =>
    new Promise((resolve) => {
      const entries = slices.map((s) => {
        const p: Pending = {
          type: s.type,
          hosts: s.hosts.length,
          readyAt: Date.now() + delay,
          cancel: () => {},
        };
        pending.add(p);
        return p;
      });
      const timer = setTimeout(() => {
        if (closed) {
          for (const p of entries) pending.delete(p);
          resolve([]);
          return;
        }
        // The entries stay pending while the agents start (startSlice removes each one).
        Promise.all(slices.map((s, i) => bringUp(s, entries[i]))).then(resolve, (e: unknown) => {
          log(`local cluster: could not bring up ${slices.map((s) => s.name).join(", ")}: ${String(e)}`);
          resolve([]);
        });
      }, delay);
      for (const p of entries) {
        p.cancel = () => {
          clearTimeout(timer);
          for (const q of entries) pending.delete(q);
          resolve([]);
        };
      }
    });

  const initialPools = options.pools ?? (options.spec ? parseClusterSpec(options.spec) : []);
  try {
    for (const pool of initialPools) await Promise.all(layout(pool).map((s) => bringUp(s)));
  } catch (e) {
    // No half-built cluster is left running behind a failed start.
    closed = true;
    await Promise.allSettled([...inflight]);
    await Promise.all([...live.values()].flatMap((s) => s.agents.map((a) => a.close())));
    throw e;
  }

  const grantable = (pool: ClusterPoolSpec): number => {
    const type = pool.type;
    let n = pool.count;
    const perSliceHosts = pool.kind === "tpu" ? hostsOf({ ...pool, count: 1 }) : pool.count;
    const maxSlices = options.quota?.maxSlices?.[type];
    const unit = pool.kind === "tpu" ? 1 : pool.count; // a cpu/gpu request is one group of `count` hosts
    if (maxSlices !== undefined) n = Math.min(n, Math.max(0, maxSlices - countType(type)) * unit);
    const maxHosts = options.quota?.maxHosts;
    if (maxHosts !== undefined) {
      const room = Math.max(0, maxHosts - countHosts());
      n = pool.kind === "tpu" ? Math.min(n, Math.floor(room / perSliceHosts)) : Math.min(n, room);
    }
    return n;
  };

  const kill = async (entry: LiveSlice) => {
    live.delete(entry.slice.name);
    await Promise.all(entry.agents.map((a) => a.kill()));
  };

  return {
    listSlices: () =>
      [...live.values()]
        .sort((a, b) => a.order - b.order)
        .map(({ slice }) => ({ ...slice, hosts: slice.hosts.map((h) => ({ ...h })) })),
    pendingSlices: () => [...pending].map(({ type, hosts, readyAt }) => ({ type, hosts, readyAt })),

    async requestSlices(type, count) {
      if (closed) return [];
      const pool = poolFor(type, count);
      const granted = grantable(pool);
      if (granted <= 0) return [];
      return provision(layout({ ...pool, count: granted }));
    },

    async releaseSlices(names) {
      const released: string[] = [];
      await Promise.all(
        names.map(async (name) => {
          const entry = live.get(name);
          if (!entry) return;
          live.delete(name);
          released.push(name);
          await Promise.all(entry.agents.map((a) => a.close()));
        }),
      );
      return released;
    },

    async killAgent(address) {
      for (const entry of live.values()) {
        const i = entry.slice.hosts.findIndex((h) => h.address === address);
        const handle = entry.agents[i];
        if (i >= 0 && handle) {
          await handle.kill();
          return;
        }
      }
      throw new UnknownSlice(`no host ${JSON.stringify(address)} in the local cluster`, { address });
    },

    async preemptSlice(name) {
      const entry = live.get(name);
      if (!entry)
        throw new UnknownSlice(`no slice ${JSON.stringify(name)} in the local cluster`, { slice: name });
      const at = Date.now();
      const notices: HostEvent[] = entry.agents.map((handle, i) => {
        const { lease, run } = handle.agent.snapshot();
        const host = entry.slice.hosts[i];
        const notice: HostEvent = {
          version: 1,
          kind: "preempted",
          eventId: randomUUID(),
          at,
          agent: handle.address,
          address: host?.address ?? handle.agent.address,
          sliceName: entry.slice.name,
          hostIndex: host?.workerId,
          reason: "preemption injected into the local cluster",
        };
        if (lease) Object.assign(notice, { leaseId: lease.leaseId, jobId: lease.jobId, epoch: lease.epoch });
        if (run)
          Object.assign(notice, {
            attempt: run.attempt,
            sliceIndex: run.sliceIndex,
            hostIndex: run.hostIndex,
          });
        return notice;
      });
      await kill(entry);
      for (const n of notices) {
        for (const topic of [PREEMPTION_NOTICES_TOPIC, HOST_EVENTS_TOPIC] as const) {
          await sink.publish(topic, n).catch((e: unknown) => log(`could not publish a notice: ${String(e)}`));
        }
      }
      const type = entry.slice.type;
      const pool = entry.slice.kind === "tpu" ? poolFor(type, 1) : poolFor(type, entry.slice.hosts.length);
      const replacement = closed ? Promise.resolve([]) : provision(layout(pool));
      return { slice: name, notices, replacement: replacement.then((s) => s[0]) };
    },

    async close() {
      closed = true;
      for (const p of [...pending]) p.cancel();
      await Promise.allSettled([...inflight]);
      const all = [...live.values()];
      live.clear();
      await Promise.all(all.flatMap((s) => s.agents.map((a) => a.close())));
    },
  };
}
