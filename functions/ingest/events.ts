import { Preempted, WorkloadFailed } from "../../core/errors.js";
import type { HostEvent, PreemptionNotice } from "../../core/host-event.js";
import { type SerializedError, serializeError } from "../../core/serialized-error.js";
import {
  type AttemptRecord,
  attemptStore,
  type CurrentAttempt,
  type HostEnd,
  keys,
  noticeUnit,
  type Outcome,
} from "../attempts.js";
import type { ControlPlaneDeps } from "../deps.js";
import type { TokenOutcome } from "../ports.js";
import { deliverOutcome, redeliverOutcome } from "../resolution.js";

/** What ingest did with an event or notice (answered to the pusher, and logged). */
export type IngestResult =
  | { action: "ignored"; reason: string }
  | { action: "recorded"; jobId: string; attempt: number; redelivered?: TokenOutcome }
  | { action: "decided"; jobId: string; attempt: number; outcome: string; delivered: string };

function plain(error: Error): SerializedError {
  const s = serializeError(error);
  delete s.stack;
  return s;
}

/** The error that ends an attempt when a host's workload fails: the user's own, when it sent one. */
export function workloadError(
  end: Pick<HostEvent, "exitCode" | "signal" | "error" | "metadataPreempted">,
  host: { sliceName: string; hostIndex: number; address: string },
): SerializedError {
  const details = {
    exitCode: end.exitCode ?? null,
    signal: end.signal ?? null,
    slice: host.sliceName,
    host: host.hostIndex,
    address: host.address,
    metadataPreempted: end.metadataPreempted ?? false,
  };
  if (end.error && end.error.name !== "WorkloadFailed") {
    return { ...end.error, details: { ...end.error.details, ...details } };
  }
  const how = end.signal ? `was killed by ${end.signal}` : `exited with code ${end.exitCode}`;
  return plain(
    new WorkloadFailed(`the workload on ${host.sliceName} host ${host.hostIndex} ${how}`, details),
  );
}

/** Errors of an exit 0 whose result broke the contract (too large, not JSON, not a file). */
const RESULT_ERRORS = new Set(["ResultTooLarge", "InvalidResult"]);

/**
 * Whether a host's exit failed: a non-zero code, a signal, or an exit 0 without the result the
 * job asked for (the agent names why), which must not pass as a success with no result.
 */
export function exitFailed(end: Pick<HostEvent, "exitCode" | "signal" | "error">): boolean {
  return end.exitCode !== 0 || Boolean(end.signal) || RESULT_ERRORS.has(end.error?.name ?? "");
}

/**
 * Whether a host's end leaves nothing of its work to lose: it exited 0 (not cancelled) and its
 * result came inline, so the control plane holds it (a `resultRef` is read from the host later).
 */
export function finishedHere(end: HostEnd | undefined): boolean {
  return end?.kind === "exited" && !end.cancelled && !exitFailed(end) && end.resultRef === undefined;
}

/**
 * The ingest of host events and preemption notices: route each to the current attempt of its
 * job, record it, decide the attempt's outcome the first time something ends it, and deliver
 * that outcome to the attempt's task token. Stale (older attempt), unknown and duplicate events
 * are ignored; nothing here polls.
 */
export function createIngest(
  deps: Pick<ControlPlaneDeps, "store" | "tokens" | "clock"> & Partial<Pick<ControlPlaneDeps, "agents">>,
) {
  const attempts = attemptStore(deps.store);

  /** The record of `attempt` if it is the job's current one (`current`: when the caller has read it). */
  async function currentRecord(
    jobId: string,
    attempt: number,
    current?: CurrentAttempt,
  ): Promise<AttemptRecord | string> {
    current ??= await attempts.current(jobId);
    if (!current) return `unknown job ${jobId}`;
    if (current.attempt !== attempt)
      return `stale: attempt ${attempt} of ${jobId}, current is ${current.attempt}`;
    if (current.state === "done") return `job ${jobId} is done`;
    const record = await attempts.record(jobId, attempt);
    return record ?? `attempt ${attempt} of ${jobId} has no hosts recorded yet`;
  }

  async function decide(
    jobId: string,
    attempt: number,
    error: SerializedError | undefined,
  ): Promise<IngestResult> {
    const outcome = error
      ? { kind: "failed" as const, at: deps.clock.now(), error }
      : { kind: "succeeded" as const, at: deps.clock.now() };
    const decided = await attempts.decide(jobId, attempt, outcome);
    if (!decided) return settled(jobId, attempt);
    const delivered = await deliverOutcome(attempts, deps.tokens, jobId, attempt, { outcome });
    return { action: "decided", jobId, attempt, outcome: error ? error.name : "succeeded", delivered };
  }

  /**
   * The attempt was decided before: send its outcome again if it never reached the token (the
   * send failed, and Pub/Sub brings the event back), else nothing.
   */
  async function settled(jobId: string, attempt: number, outcome?: Outcome): Promise<IngestResult> {
    const again = await redeliverOutcome(attempts, deps.tokens, jobId, attempt, outcome);
    return again === "sent" || again === "stale"
      ? { action: "recorded", jobId, attempt, redelivered: again }
      : { action: "recorded", jobId, attempt };
  }

  async function hostEvent(event: HostEvent): Promise<IngestResult> {
    if (event.jobId === undefined || event.attempt === undefined)
      return { action: "ignored", reason: "not part of a job" };
    const { jobId, attempt } = event;
    const record = await currentRecord(jobId, attempt);
    if (typeof record === "string") return { action: "ignored", reason: record };
    const host = record.hosts.find(
      (h) =>
        (event.sliceIndex !== undefined &&
          h.sliceIndex === event.sliceIndex &&
          h.hostIndex === event.hostIndex) ||
        (event.sliceIndex === undefined && h.address === event.address),
    );
    if (!host)
      return {
        action: "ignored",
        reason: `host ${event.address} is not part of attempt ${attempt} of ${jobId}`,
      };
    if (event.kind === "heartbeat") return heartbeat(record, host);
    const end: HostEnd = {
      kind: event.kind,
      eventId: event.eventId,
      at: event.at,
      exitCode: event.exitCode,
      signal: event.signal,
      cancelled: event.cancelled,
      result: event.result,
      resultRef: event.resultRef,
      error: event.error,
      metadataPreempted: event.metadataPreempted,
      reason: event.reason,
    };
    const previous = await recordEnd(record, host, event.kind, end);
    // A duplicate is not written again, but goes on: what its first delivery did after writing
    // (count a success, decide, send the outcome) may have been cut short, and every step is
    // idempotent.
    const duplicate = previous?.eventId === event.eventId;
    const exited = previous?.kind === "exited" && !previous.cancelled ? previous : undefined;
    // A host whose workload ended repeats its end while its lease holds: that keeps the lease (and
    // the result the host holds) while the attempt waits for the others. Once the attempt is
    // decided the teardown follows, and if it never comes (the execution died) the lease lapses.
    // The end itself was handled when it first came (a cut-short first delivery comes back as a
    // duplicate and is finished above): a repeat does nothing more.
    if (exited && !duplicate && event.kind === "exited") {
      const outcome = await attempts.outcome(jobId, attempt);
      if (outcome) return settled(jobId, attempt, outcome);
      if (!event.cancelled) await renewLease(record, host);
      return { action: "recorded", jobId, attempt };
    }
    switch (event.kind) {
      case "preempted":
        // Its work was done and its result is here: losing the VM now loses nothing.
        if (finishedHere(exited)) return { action: "recorded", jobId, attempt };
        return decide(
          jobId,
          attempt,
          plain(
            new Preempted(`host ${host.address} of ${host.sliceName} is being preempted`, {
              slice: host.sliceName,
              address: host.address,
              reason: event.reason ?? "",
            }),
          ),
        );
      case "lost":
        // Likewise a host that finished here and then let its lease lapse.
        if (finishedHere(exited)) return { action: "recorded", jobId, attempt };
        return decide(jobId, attempt, {
          name: "LeaseExpired",
          message: `host ${host.address} of ${host.sliceName} freed itself: ${event.reason ?? "lease expired"}`,
          details: { slice: host.sliceName, address: host.address },
        });
      case "exited": {
        if (event.cancelled) return { action: "recorded", jobId, attempt };
        if (exitFailed(event)) return decide(jobId, attempt, workloadError(event, host));
        await attempts.markSucceeded(jobId, attempt, host.sliceIndex, host.hostIndex);
        const succeeded = await attempts.succeededHosts(jobId, attempt);
        const done = record.hosts.filter((h) => succeeded.has(`${h.sliceIndex}-${h.hostIndex}`)).length;
        if (done < record.hosts.length) return { action: "recorded", jobId, attempt };
        return decide(jobId, attempt, undefined);
      }
    }
  }

  /**
   * Record a host's end; answers the end it had before (none: this one is its first, or it is
   * a duplicate of that). The first end a host reports is its end — created atomically, so an
   * exit and a preemption pushed at once cannot both be first. A later one replaces it only when
   * it says more: an exit replaces a preemption or a loss (the exit and result, marked preempted)
   * and any end replaces a cancelled exit; a preemption does not undo an exit, but marks a failed
   * one as in the wake of a preemption (FACTS: such a failure counts as a preemption).
   */
  async function recordEnd(
    record: AttemptRecord,
    host: AttemptRecord["hosts"][number],
    kind: HostEnd["kind"],
    end: HostEnd,
  ): Promise<HostEnd | undefined> {
    const { jobId, attempt } = record;
    const { sliceIndex: s, hostIndex: h } = host;
    const first = { ...end, metadataPreempted: end.metadataPreempted || kind === "preempted" };
    if (await attempts.createHostEnd(jobId, attempt, s, h, first)) return undefined;
    const previous = await attempts.hostEnd(jobId, attempt, s, h);
    if (previous?.eventId === end.eventId) return previous;
    const cancelled = previous?.kind === "exited" && previous.cancelled;
    const exitAfterLoss = previous !== undefined && previous.kind !== "exited" && kind === "exited";
    if (!previous || cancelled || exitAfterLoss) {
      // (an unreadable end — none could be by now — is replaced too)
      await attempts.writeHostEnd(jobId, attempt, s, h, {
        ...end,
        metadataPreempted: first.metadataPreempted || previous?.metadataPreempted,
      });
    } else if (previous.kind === "exited" && kind === "preempted" && exitFailed(previous)) {
      if (!previous.metadataPreempted)
        await attempts.writeHostEnd(jobId, attempt, s, h, { ...previous, metadataPreempted: true });
    }
    return previous;
  }

  /** Renew the lease of one host of the attempt (one that does not answer lets it lapse). */
  async function renewLease(record: AttemptRecord, host: AttemptRecord["hosts"][number]): Promise<void> {
    if (!deps.agents || !host.agent) return;
    await deps.agents
      .agent(host.agent)
      .renewLease({ leaseId: record.leaseId, epoch: record.attempt, ttlMs: record.leaseTtlMs })
      .catch(() => undefined);
  }

  /**
   * A host says it is alive: renew its lease, note the time, and — at most a few times per
   * heartbeat period — heartbeat the attempt's task if every host was heard from recently, or end
   * the attempt if one has been silent for a whole period (a lost host says nothing itself).
   */
  async function heartbeat(
    record: AttemptRecord,
    host: AttemptRecord["hosts"][number],
  ): Promise<IngestResult> {
    const { jobId, attempt } = record;
    const now = deps.clock.now();
    // Alive when we heard it, by our clock: an agent's clock may lag ours, and an old beat that
    // Pub/Sub brings back late must not make the host look silent longer than it was.
    await attempts.markAlive(jobId, attempt, host.sliceIndex, host.hostIndex, now);
    await renewLease(record, host);
    const sentAt = Number((await deps.store.get(keys.heartbeatSent(jobId, attempt))) ?? 0);
    if (now - sentAt < record.heartbeatMs / 4) return { action: "recorded", jobId, attempt };
    // A decided attempt is not kept alive: its outcome is sent again if it never arrived.
    const outcome = await attempts.outcome(jobId, attempt);
    if (outcome) return settled(jobId, attempt, outcome);
    const alive = await attempts.aliveHosts(jobId, attempt);
    const silent = record.hosts.filter((h) => {
      const last = alive.get(`${h.sliceIndex}-${h.hostIndex}`) ?? record.startedAt;
      return now - last > record.heartbeatMs;
    });
    if (silent.length > 0) {
      const ends = await attempts.hostEnds(jobId, attempt);
      const lost = silent.filter((h) => !ends.has(`${h.sliceIndex}-${h.hostIndex}`));
      if (lost.length > 0) {
        const names = lost.slice(0, 5).map((h) => `${h.sliceName}#${h.hostIndex} (${h.address})`);
        return decide(jobId, attempt, {
          name: "HostLost",
          message: `${lost.length} host(s) silent for over ${record.heartbeatMs / 1000} s: ${names.join(", ")}`,
          details: { slice: lost[0]?.sliceName, hosts: lost.slice(0, 20).map((h) => h.address) },
        });
      }
    }
    await deps.store.put(keys.heartbeatSent(jobId, attempt), String(now));
    const token = await attempts.token(jobId, attempt);
    if (token) await deps.tokens.heartbeat(token);
    return { action: "recorded", jobId, attempt };
  }

  /** Whether every one of `hosts` finished here (see {@link finishedHere}); stops at the first not. */
  async function allFinishedHere(record: AttemptRecord, hosts: AttemptRecord["hosts"]): Promise<boolean> {
    for (const h of hosts) {
      const end = await attempts.hostEnd(record.jobId, record.attempt, h.sliceIndex, h.hostIndex);
      if (!finishedHere(end)) return false;
    }
    return true;
  }

  async function notice(n: PreemptionNotice): Promise<IngestResult> {
    const route =
      n.slice !== undefined ? await attempts.routeSlice(n.slice) : await attempts.routeHost(n.address ?? "");
    const what = n.slice !== undefined ? `slice ${n.slice}` : `host ${n.address}`;
    if (!route) return { action: "ignored", reason: `${what} is not part of any attempt` };
    if (n.jobId !== undefined && n.jobId !== route.jobId)
      return { action: "ignored", reason: `${what} now belongs to another job` };
    const current = await attempts.current(route.jobId);
    if (!current) return { action: "ignored", reason: `unknown job ${route.jobId}` };
    if (n.attempt !== undefined && n.attempt !== current.attempt)
      return { action: "ignored", reason: `stale notice for attempt ${n.attempt}` };
    if (current.state === "done") return { action: "ignored", reason: `job ${route.jobId} is done` };
    const unit = n.slice !== undefined ? noticeUnit.slice(n.slice) : noticeUnit.host(n.address ?? "");
    const noticedAt = n.at ?? deps.clock.now();
    const record = await attempts.record(route.jobId, current.attempt);
    if (!record) {
      // Between attempts (the next one not placed yet): no attempt to end, but the slice may be
      // one kept for an in-place restart. PreparePlacement heeds the note.
      await attempts.noteNoticed(route.jobId, unit, noticedAt);
      return { action: "recorded", jobId: route.jobId, attempt: current.attempt };
    }
    const hits = record.hosts.filter((h) =>
      n.slice !== undefined ? h.sliceName === n.slice : h.address === n.address,
    );
    const hit = hits[0];
    if (!hit) return { action: "ignored", reason: `${what} is not in the current attempt` };
    // Slices and hosts keep their names across attempts (an inventory, an in-place restart): a
    // notice of a preemption from before this attempt started — a late or second report of the
    // one that ended the last attempt — is not about this one. A notice naming its attempt was
    // judged by that already (an agent's clock need not agree with ours).
    if (n.attempt === undefined && n.at !== undefined && n.at < record.startedAt)
      return {
        action: "ignored",
        reason: `stale notice: ${what} was preempted before attempt ${record.attempt} started`,
      };
    if (await allFinishedHere(record, hits))
      return { action: "ignored", reason: `${what} finished its work before it was preempted` };
    // Recorded as each host's end, whatever has ended the attempt already: a failure it decided
    // first (a host's collectives broke as the slice went) counts as the preemption it was
    // (FACTS: any preemption in an attempt makes it one), and the teardown gives the slice back
    // rather than keeping it for the next attempt.
    const at = noticedAt;
    for (const h of hits) {
      await recordEnd(record, h, "preempted", {
        kind: "preempted",
        eventId: `notice:${what}:${at}`,
        at,
        reason: n.reason ?? `${what} preempted`,
      });
    }
    const error = plain(
      new Preempted(`${what} preempted${n.reason ? `: ${n.reason}` : ""}`, {
        slice: hit.sliceName,
        address: n.address ?? null,
      }),
    );
    const result = await decide(route.jobId, current.attempt, error);
    // The attempt had ended already: its teardown may have kept the slice, and the next
    // attempt must not launch on it. (A teardown that gives it back clears the note.)
    if (result.action !== "decided") await attempts.noteNoticed(route.jobId, unit, at);
    return result;
  }

  return { hostEvent, notice };
}
