import type { ClusterHost, ClusterSlice } from "../../core/cluster-spec.js";
import { type JobSpec, leaseTtlSeconds } from "../../core/job-spec.js";
import { FAN_OUT, mapLimit } from "../deps.js";
import type { AgentConnector } from "../ports.js";

/** How long a lease lasts without renewal: a control plane that dies strands no host for long. */
export function leaseTtlMs(job: JobSpec): number {
  return leaseTtlSeconds(job.timeouts.heartbeatSeconds) * 1000;
}

/** What ScaleSlices leases all or nothing: a TPU slice, or one GPU/CPU host. */
export interface Unit {
  /** The slice (TPU) or pool (GPU/CPU) the hosts belong to. */
  slice: ClusterSlice;
  hosts: ClusterHost[];
  /** Its name in `KeptLeases`: the slice's (TPU), the host's address (GPU/CPU). */
  key: string;
}

/** A lease as agent commands name it. */
export interface LeaseRef {
  leaseId: string;
  epoch: number;
}

/**
 * Lease every host of a unit, all or nothing. A unit not wholly held is released on every host:
 * a host whose answer was lost (a deadline passed after it granted) may hold the lease all the
 * same, and releasing a host that holds another lease (or none) changes nothing.
 */
export async function leaseUnit(
  agents: AgentConnector,
  unit: Unit,
  lease: LeaseRef & { jobId: string; ttlMs: number },
): Promise<boolean> {
  const held = await mapLimit(unit.hosts, FAN_OUT, async (h) => {
    if (!h.agent) return false;
    try {
      return (await agents.agent(h.agent).acquireLease(lease)).held;
    } catch {
      return false;
    }
  });
  if (held.every(Boolean)) return true;
  await releaseHosts(agents, unit.hosts, lease);
  return false;
}

/**
 * Lease units from `candidates`, in order and a batch at a time, into `got` until it has `want`
 * (or the candidates run out); `between` runs after each batch (a renewal of what is held, which
 * may drop units from `got`). A host is in one unit of the job at most: where an inventory puts
 * one host in two units (or twice in one), placement would fail on every attempt, so such a unit
 * is passed over.
 */
export async function leaseInBatches(
  agents: AgentConnector,
  candidates: readonly Unit[],
  lease: LeaseRef & { jobId: string; ttlMs: number },
  got: Unit[],
  want: number,
  between?: () => Promise<void>,
): Promise<void> {
  const taken = new Set(got.flatMap((u) => u.hosts.map((h) => h.address)));
  const fits = (u: Unit) =>
    new Set(u.hosts.map((h) => h.address)).size === u.hosts.length &&
    u.hosts.every((h) => !taken.has(h.address));
  let next = 0;
  while (got.length < want && next < candidates.length) {
    const batch: Unit[] = [];
    while (batch.length < want - got.length && next < candidates.length) {
      const u = candidates[next++] as Unit;
      if (!fits(u)) continue;
      for (const h of u.hosts) taken.add(h.address);
      batch.push(u);
    }
    const held = await mapLimit(
      batch,
      Math.max(1, Math.floor(FAN_OUT / (batch[0]?.hosts.length ?? 1))),
      (u) => leaseUnit(agents, u, lease),
    );
    batch.forEach((u, i) => {
      if (held[i]) got.push(u);
      else for (const h of u.hosts) taken.delete(h.address);
    });
    await between?.();
  }
}

/**
 * Renew the leases of units held (each under the lease `leaseOf` names); answers the units that
 * are not held whole any more (a host refused, or did not answer).
 */
export async function renewUnits(
  agents: AgentConnector,
  units: readonly Unit[],
  leaseOf: (u: Unit) => LeaseRef,
  ttlMs: number,
): Promise<Unit[]> {
  const hosts = units.flatMap((u) => u.hosts.map((h) => ({ u, h })));
  const renewed = await mapLimit(hosts, FAN_OUT, async ({ u, h }) => {
    if (!h.agent) return false;
    try {
      return (await agents.agent(h.agent).renewLease({ ...leaseOf(u), ttlMs })).held;
    } catch {
      return false;
    }
  });
  const lost = new Set(hosts.filter((_, i) => !renewed[i]).map(({ u }) => u));
  return units.filter((u) => lost.has(u));
}

/**
 * Release hosts the job holds: those of units the last teardown kept under the older lease they
 * still hold (`kept`), the others under this attempt's.
 */
export async function releaseHeld(
  agents: AgentConnector,
  hosts: readonly { host: ClusterHost; kept: boolean }[],
  lease: LeaseRef,
  keptLease: LeaseRef | undefined,
): Promise<void> {
  await Promise.all([
    releaseHosts(
      agents,
      hosts.filter((h) => !h.kept).map((h) => h.host),
      lease,
    ),
    keptLease
      ? releaseHosts(
          agents,
          hosts.filter((h) => h.kept).map((h) => h.host),
          keptLease,
        )
      : undefined,
  ]);
}

/** Release the lease on hosts; unreachable ones free themselves when the lease expires. */
export async function releaseHosts(
  agents: AgentConnector,
  hosts: readonly ClusterHost[],
  lease: LeaseRef,
  graceMs?: number,
): Promise<void> {
  await mapLimit(hosts, FAN_OUT, async (h) => {
    if (!h.agent) return;
    await agents
      .agent(h.agent)
      .releaseLease({
        leaseId: lease.leaseId,
        epoch: lease.epoch,
        ...(graceMs === undefined ? {} : { graceMs }),
      })
      .catch(() => undefined);
  });
}
