import type { AttemptProblem } from "../../core/classification.js";
import type { AttemptRecord, HostEnd } from "../attempts.js";
import { FAN_OUT, mapLimit } from "../deps.js";
import type { AgentConnector } from "../ports.js";

/** How long a host has to answer before it counts as unreachable. */
export const HOST_PROBE_TIMEOUT_MS = 5_000;

/** `promise`, or `undefined` once `ms` have passed without an answer (or on an error). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise.catch(() => undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Hosts of a failed attempt that are gone or being preempted, as problems. In a multi-host job
 * the loss of one host (its VM preempted) makes the others fail in their collectives, and those
 * failures usually decide the attempt before the loss is heard of: a notice or a lost heartbeat
 * comes seconds later. One attempt with a preemption in it counts as a preemption (FACTS.md), so
 * before a failure is counted every host the attempt has no loss recorded for is asked: one that
 * does not answer within `timeoutMs`, or says its VM is being preempted, is a loss.
 */
export async function lostHosts(
  agents: AgentConnector,
  record: AttemptRecord,
  ends: ReadonlyMap<string, HostEnd>,
  timeoutMs = HOST_PROBE_TIMEOUT_MS,
): Promise<AttemptProblem[]> {
  const unknown = record.hosts.filter((h) => {
    const end = ends.get(`${h.sliceIndex}-${h.hostIndex}`);
    return end?.kind !== "preempted" && end?.kind !== "lost";
  });
  const found = await mapLimit(unknown, FAN_OUT, async (h): Promise<AttemptProblem | undefined> => {
    const where = `host ${h.address} of ${h.sliceName}`;
    const details = { slice: h.sliceName, address: h.address };
    const status = h.agent ? await within(agents.agent(h.agent).status(), timeoutMs) : undefined;
    if (!status)
      return {
        error: {
          name: "HostUnreachable",
          message: `${where} did not answer once the attempt failed`,
          details,
        },
      };
    if (status.preempted)
      return { error: { name: "Preempted", message: `${where} is being preempted`, details } };
    return undefined;
  });
  return found.filter((p): p is AttemptProblem => p !== undefined);
}
