import { randomUUID } from "node:crypto";
import { inheritableEnvironment } from "../../core/env-names.js";
import {
  AgentStopping,
  HostNotClean,
  LeaseConflict,
  RunNotFound,
} from "../../functions/clients/agent/errors.js";
import type {
  AcquireLeaseRequest,
  CancelReply,
  HealthReply,
  HostStatus,
  Lease,
  LeaseReply,
  OutputReply,
  PeerStatus,
  ReleaseLeaseRequest,
  RenewLeaseRequest,
  ResultReply,
  RunInfo,
  RunReply,
  RunRequest,
  SliceStatusReply,
} from "../../functions/clients/agent/messages.js";
import { type Clock, systemClock } from "./clock.js";
import { EventPublisher } from "./event-publisher.js";
import {
  discardEvents,
  type EventSink,
  HOST_EVENTS_TOPIC,
  type HostEvent,
  type HostEventKind,
  PREEMPTION_NOTICES_TOPIC,
} from "./events.js";
import { Prefork } from "./prefork.js";
import { type ResultRead, readErrorFile, readLeftResult, readResultFile } from "./run-files.js";
import {
  heartbeatEvent,
  peerLostEvent,
  type RunRecord,
  runEndEvent,
  runInfo,
  sameRun,
  sliceState,
} from "./run-record.js";
import { prepareAndStart } from "./run-start.js";
import { Serial } from "./serial.js";
import { type PeerClientFactory, type PeerState, SliceMonitor, sharedPeerClients } from "./slice-monitor.js";

/** Version reported by Health. */
export const AGENT_VERSION = "gangway-agent/1";

/** What a host agent needs; every default is what a real TPU VM wants. */
export interface HostAgentOptions {
  /** The host's own address (IP) that workloads bind to. */
  address: string;
  /** Where run directories (result and error files) live. */
  workDir: string;
  /** The libtpu lockfile deleted before every run (default `/tmp/libtpu_lockfile`). */
  lockfilePath?: string;
  /** SIGKILL holders of `/dev/vfio` before every run (default off). */
  killVfioHolders?: boolean;
  vfioPath?: string;
  eventSink?: EventSink;
  clock?: Clock;
  /** Default grace between SIGTERM and SIGKILL (5 s). */
  graceMs?: number;
  /** Largest result file read (4 MiB); larger is reported as ResultTooLarge. */
  resultLimitBytes?: number;
  /** Largest result carried inline in events and Status (64 KiB); larger travels as a reference. */
  inlineResultBytes?: number;
  /** Bytes of stdout and stderr kept, each (64 KiB). */
  tailBytes?: number;
  /** Working directory of runs that name none (default: the agent's own). */
  cwd?: string;
  /** Environment inherited by workloads, before the contract's (default: the agent's own, stripped). */
  baseEnv?: Record<string, string>;
  log?: (line: string) => void;
  /** How a slice head reaches its peers' agents (without it, `slicePeers` of a Run is ignored). */
  peerClients?: PeerClientFactory;
  /** Polling of the peers by a slice head (default every 2 s; lost after 3 failed rounds). */
  sliceMonitor?: { intervalMs?: number; failuresToLost?: number };
  /** Default period of heartbeat events while a run lasts (15 s; a Run may ask for another). */
  heartbeatMs?: number;
  /**
   * Asks the metadata endpoint whether this VM is being preempted, when a workload fails (a task
   * error on a preempted host counts as a preemption). Absent: not asked.
   */
  metadataPreempted?: () => Promise<boolean>;
  /**
   * Keep a shell forked ahead of time to become the next workload, so Run does not pay for a
   * fork of this process (default: on where `/bin/sh` and `/usr/bin/env` exist). The number is
   * how long after use the next one is forked (default 1000 ms); `false` turns it off.
   */
  prefork?: boolean | number;
}

interface LeaseRecord extends Lease {
  cancelTimer: () => void;
  /** The TTL it was last granted or renewed with. */
  ttlMs: number;
}

/** Whether `run` is of job `jobId` and, unless `attempt` is 0, of that attempt. */
const isRunOf = (run: RunRecord | undefined, jobId: string, attempt: number): boolean =>
  run?.req.jobId === jobId && (attempt === 0 || run.req.attempt === attempt);

/**
 * One host's agent, without its transport: leases, runs, cancellation, status and events.
 * The gRPC service ({@link ../grpc-service.ts}) is a thin layer over it.
 */
export class HostAgent {
  /** `host:port` the agent serves on; set by the server once bound. */
  agent = "";
  readonly address: string;
  readonly startedAt: number;
  private readonly o: Required<
    Omit<
      HostAgentOptions,
      | "address"
      | "workDir"
      | "baseEnv"
      | "peerClients"
      | "sliceMonitor"
      | "cwd"
      | "metadataPreempted"
      | "prefork"
    >
  > & {
    workDir: string;
    baseEnv: Record<string, string>;
  };
  private readonly serial = new Serial();
  private readonly peerClients: (PeerClientFactory & { closeAll(): void }) | undefined;
  private readonly cwd: string;
  private readonly askMetadata: (() => Promise<boolean>) | undefined;
  private readonly sliceMonitorOptions: { intervalMs?: number; failuresToLost?: number };
  private lease: LeaseRecord | undefined;
  private run: RunRecord | undefined;
  private preempted = false;
  private stopping = false;
  private seq = 0;
  private readonly watchers = new Set<(s: HostStatus) => void>();
  private readonly events: EventPublisher;
  private readonly prefork: Prefork | undefined;

  constructor(options: HostAgentOptions) {
    this.address = options.address;
    this.o = {
      workDir: options.workDir,
      lockfilePath: options.lockfilePath ?? "/tmp/libtpu_lockfile",
      killVfioHolders: options.killVfioHolders ?? false,
      vfioPath: options.vfioPath ?? "/dev/vfio",
      eventSink: options.eventSink ?? discardEvents,
      clock: options.clock ?? systemClock,
      graceMs: options.graceMs ?? 5000,
      resultLimitBytes: options.resultLimitBytes ?? 4 * 1024 * 1024,
      inlineResultBytes: options.inlineResultBytes ?? 64 * 1024,
      tailBytes: options.tailBytes ?? 64 * 1024,
      baseEnv: options.baseEnv ?? inheritableEnvironment(process.env),
      heartbeatMs: options.heartbeatMs ?? 15_000,
      log: options.log ?? ((line) => process.stderr.write(`${line}\n`)),
    };
    this.startedAt = this.o.clock.now();
    this.events = new EventPublisher(this.o.eventSink, this.o.log);
    this.peerClients = options.peerClients ? sharedPeerClients(options.peerClients) : undefined;
    this.cwd = options.cwd ?? process.cwd();
    this.askMetadata = options.metadataPreempted;
    this.sliceMonitorOptions = options.sliceMonitor ?? {};
    const prefork = options.prefork ?? true;
    this.prefork =
      prefork !== false && Prefork.supported()
        ? new Prefork(typeof prefork === "number" ? prefork : undefined)
        : undefined;
  }

  health(): HealthReply {
    return {
      ok: !this.stopping,
      agent: this.agent,
      address: this.address,
      version: AGENT_VERSION,
      startedAtMs: this.startedAt,
      preempted: this.preempted,
    };
  }

  // ---- leases -------------------------------------------------------------------------------

  /**
   * Lease the host. Free (or expired) → granted. Same lease → renewed, its epoch raised if the
   * request's is newer. Another lease of the same job with a newer epoch → taken over (what ran
   * under the old one is cancelled). Anything else → {@link LeaseConflict}. While processes of
   * an earlier run outlive SIGKILL → {@link HostNotClean}.
   */
  acquireLease(req: AcquireLeaseRequest): Promise<LeaseReply> {
    return this.serial.run(async () => {
      this.assertServing();
      await this.expireIfDue();
      this.requireClean(this.survivors());
      const cur = this.lease;
      if (cur) {
        const takeover = cur.leaseId === req.leaseId || cur.jobId === req.jobId;
        if (!takeover || req.epoch < cur.epoch || (req.epoch === cur.epoch && cur.leaseId !== req.leaseId)) {
          throw new LeaseConflict(
            `host is leased to ${cur.leaseId} (job ${cur.jobId}, epoch ${cur.epoch}); refused ${req.leaseId} epoch ${req.epoch}`,
            { heldBy: cur.leaseId, heldEpoch: cur.epoch, requested: req.leaseId, requestedEpoch: req.epoch },
          );
        }
        if (req.epoch > cur.epoch || cur.leaseId !== req.leaseId)
          this.requireClean(await this.stopRun("cancelled"));
      }
      this.setLease(req.leaseId, req.jobId, req.epoch, req.ttlMs);
      return this.leaseReply();
    });
  }

  /**
   * Extend the lease by `ttlMs` from now; only the holder, at its current epoch, may. A live lease
   * is renewed at once, never queued behind a long Cancel (its renewals must not starve).
   */
  async renewLease(req: RenewLeaseRequest): Promise<LeaseReply> {
    this.assertServing();
    const live = this.lease && this.o.clock.now() < this.lease.expiresAtMs;
    if (!live) {
      // Expired (or none): let the expiry happen in order, then refuse.
      await this.serial.run(() => this.expireIfDue());
    }
    const cur = this.requireLease(req.leaseId, req.epoch);
    this.setLease(cur.leaseId, cur.jobId, cur.epoch, req.ttlMs);
    return this.leaseReply();
  }

  /**
   * Cancel whatever runs under the lease and free the host; the reply names processes of its run
   * that outlived SIGKILL. Releasing a free host changes nothing; it reports those processes of
   * the named lease's run again, so a caller that retries sees when they are gone.
   */
  releaseLease(req: ReleaseLeaseRequest): Promise<LeaseReply> {
    return this.serial.run(async () => {
      await this.expireIfDue();
      if (!this.lease) {
        const mine = this.run?.req.leaseId === req.leaseId;
        return {
          held: false,
          lease: null,
          status: this.status(),
          leftoverPids: mine ? this.survivors() : [],
        };
      }
      this.requireLease(req.leaseId, req.epoch);
      const leftoverPids = await this.stopRun("cancelled", req.graceMs, undefined, () => this.clearLease());
      return { held: false, lease: null, status: this.status(), leftoverPids };
    });
  }

  private setLease(leaseId: string, jobId: string, epoch: number, ttlMs: number): void {
    this.lease?.cancelTimer();
    const lease: LeaseRecord = {
      leaseId,
      jobId,
      epoch,
      expiresAtMs: this.o.clock.now() + ttlMs,
      ttlMs,
      cancelTimer: () => {},
    };
    const check = () => {
      if (this.lease !== lease) return;
      // Timers may fire a little before the clock says the time has come: wait out the rest.
      const left = lease.expiresAtMs - this.o.clock.now();
      if (left > 0) {
        lease.cancelTimer = this.o.clock.schedule(left + 1, check);
        return;
      }
      this.serial.run(() => this.expireIfDue()).catch((e) => this.o.log(`lease expiry: ${String(e)}`));
    };
    lease.cancelTimer = this.o.clock.schedule(ttlMs, check);
    this.lease = lease;
    this.changed();
  }

  private clearLease(): void {
    this.lease?.cancelTimer();
    this.run?.monitor?.stop();
    this.lease = undefined;
    this.changed();
  }

  /** A lease past its time frees the host: what runs under it is killed and reported `lost`. */
  private async expireIfDue(): Promise<void> {
    const cur = this.lease;
    if (!cur || this.o.clock.now() < cur.expiresAtMs) return;
    await this.stopRun("lost", undefined, `lease ${cur.leaseId} expired unrenewed`, () => this.clearLease());
  }

  private requireLease(leaseId: string, epoch: number): LeaseRecord {
    const cur = this.lease;
    if (!cur)
      throw new LeaseConflict(`host is not leased; refused ${leaseId} epoch ${epoch}`, { leaseId, epoch });
    if (cur.leaseId !== leaseId || cur.epoch !== epoch) {
      throw new LeaseConflict(
        `host is leased to ${cur.leaseId} epoch ${cur.epoch}; refused ${leaseId} epoch ${epoch}`,
        { heldBy: cur.leaseId, heldEpoch: cur.epoch, requested: leaseId, requestedEpoch: epoch },
      );
    }
    return cur;
  }

  private leaseReply(): LeaseReply {
    const l = this.lease;
    return l
      ? {
          held: true,
          lease: { leaseId: l.leaseId, jobId: l.jobId, epoch: l.epoch, expiresAtMs: l.expiresAtMs },
        }
      : { held: false, lease: null };
  }

  // ---- runs ---------------------------------------------------------------------------------

  /**
   * Start the workload under the lease: cancel the previous run, delete the libtpu lockfile (and
   * kill /dev/vfio holders if configured), then spawn a fresh process group with the inherited
   * environment stripped of contract variables + the request's env + GANGWAY_RESULT_FILE /
   * GANGWAY_ERROR_FILE. Asking again for the run that is already there returns it unchanged.
   */
  startRun(req: RunRequest): Promise<RunReply> {
    return this.serial.run(async () => {
      this.assertServing();
      await this.expireIfDue();
      if (req.takeOverTtlMs > 0) this.takeOver(req);
      this.requireLease(req.leaseId, req.epoch);
      const prev = this.run;
      if (prev && sameRun(prev.req, req) && !this.isStale(prev)) return this.runReply(prev, true);
      this.requireClean(await this.stopRun("cancelled", req.graceMs));
      prev?.monitor?.stop(); // the slice view lasts until the next run or the end of the lease
      const record = await prepareAndStart(req, {
        ...this.o,
        cwd: this.cwd,
        now: this.o.clock.now,
        prefork: this.prefork,
      });
      this.run = record;
      if (!record.workload) {
        this.changed();
        this.publishEnd(record);
        return this.runReply(record, false);
      }
      const workload = record.workload;
      record.finished = workload.exited
        .then((exit) => this.finishRun(record, exit.code, exit.signal, exit.endedAt))
        .catch((e) => this.o.log(`recording the end of ${record.req.jobId}: ${String(e)}`));
      this.startHeartbeat(record, req.heartbeatMs || this.o.heartbeatMs);
      if (req.slicePeers.length > 0 && this.peerClients) {
        record.monitor = new SliceMonitor(req.slicePeers, this.peerClients, {
          ...this.sliceMonitorOptions,
          onLost: (peer) => this.publishPeerLost(record, peer),
        }).start();
      }
      this.changed();
      return this.runReply(record, false);
    });
  }

  /**
   * An in-place restart: this job's lease of an older epoch becomes the run's lease. Only the
   * same job at a newer epoch may (as in {@link acquireLease}'s takeover); anything else is left
   * to {@link requireLease} to refuse.
   */
  private takeOver(req: RunRequest): void {
    const cur = this.lease;
    if (!cur || (cur.leaseId === req.leaseId && cur.epoch === req.epoch)) return;
    if (cur.jobId !== req.jobId || req.epoch <= cur.epoch) return;
    this.setLease(req.leaseId, req.jobId, req.epoch, req.takeOverTtlMs);
  }

  /** A run of an older lease or epoch than the current lease is never handed back as current. */
  private isStale(run: RunRecord): boolean {
    return !this.lease || this.lease.leaseId !== run.req.leaseId || this.lease.epoch !== run.req.epoch;
  }

  /**
   * Publish `heartbeat` every `periodMs` while the run lasts (the control plane's liveness
   * signal). Once the workload has ended by itself, and while its lease holds, the beat is its end
   * again instead: an end event that got lost still arrives, and the control plane keeps the
   * lease of a host that finished first (and the result it holds) while the others run on. A run
   * its lease holder cancelled goes quiet.
   */
  private startHeartbeat(run: RunRecord, periodMs: number): void {
    const beat = () => {
      if (this.stopping || this.run !== run || this.isStale(run) || (run.exited && run.cancelled)) return;
      if (run.exited) this.publishEnd(run);
      else this.events.publish(HOST_EVENTS_TOPIC, heartbeatEvent(this.baseEvent("heartbeat"), run));
      this.o.clock.schedule(periodMs, beat);
    };
    this.o.clock.schedule(periodMs, beat);
  }

  private async finishRun(run: RunRecord, code: number | null, signal: string | null, endedAt: number) {
    const failed = !run.cancelled && run.endKind === "exited" && (code !== 0 || signal !== null);
    run.exitCode = code;
    run.signal = signal;
    run.endedAt = endedAt;
    // Ended by itself: what it left running in its group goes now (SIGTERM, grace, SIGKILL), not
    // at the teardown, which may come hours later, when the group's id may belong to another.
    run.leaderExited = true;
    if (!run.cancelled && run.endKind === "exited" && run.workload)
      run.leftoverPids = await run.workload.terminate(this.o.graceMs);
    // The workload owns these paths: whatever it left there, the run's end is still recorded.
    const [result, error] = await Promise.all([
      readResultFile(run.files.resultFile, this.o.resultLimitBytes),
      readErrorFile(run.files.errorFile, 256 * 1024),
    ]).catch((e): [ResultRead, undefined] => [
      {
        kind: "invalid",
        bytes: 0,
        error: { name: "InvalidResult", message: `result unreadable: ${String(e)}` },
      },
      undefined,
    ]);
    if (this.preempted) run.metadataPreempted = true;
    else if (failed && this.askMetadata) run.metadataPreempted = await this.askMetadata().catch(() => false);
    run.resultBytes = result.kind === "absent" ? 0 : result.bytes;
    if (result.kind === "ok") run.resultJson = result.json;
    // An exit 0 stands or falls by its result; a failed exit by its own error, if it wrote one.
    const resultProblem = result.kind === "too-large" || result.kind === "invalid" ? result.error : undefined;
    run.error = code === 0 && signal === null ? (resultProblem ?? error) : (error ?? resultProblem);
    run.exited = true;
    this.changed();
    if (!run.holdEvent) this.publishEnd(run);
  }

  /**
   * End the current run (if it runs): SIGTERM the group, grace, SIGKILL, wait until /proc shows
   * none of it, then wait for its end to be recorded. `cancelled`: its lease holder asked (not
   * published); `shutdown`: the agent stops, `lost`: the lease expired (both published as `lost`).
   */
  private async stopRun(
    kind: "cancelled" | "shutdown" | "lost",
    graceMs?: number,
    reason?: string,
    beforeEvent?: () => void,
  ): Promise<number[]> {
    const run = this.run;
    if (!run?.workload) {
      beforeEvent?.();
      return [];
    }
    if (run.exited || run.leaderExited) {
      // Its leader is gone (its end is recorded, or being recorded: it is not relabelled), but
      // what it left running in its group (a daemon, a loader) may not be: that goes the same way.
      run.leftoverPids = await run.workload.terminate(graceMs || this.o.graceMs);
      if (run.leftoverPids.length === 0) await run.finished;
      beforeEvent?.();
      return run.leftoverPids;
    }
    // Only the lease holder's cancel is a cancel. An agent that stops takes the run down as a
    // lapsed lease would, and says so: the attempt hears of the loss now, not a heartbeat later.
    run.cancelled = kind === "cancelled";
    run.endKind = kind === "cancelled" ? "exited" : "lost";
    run.reason = reason ?? (kind === "cancelled" ? "cancelled" : undefined);
    run.holdEvent = true;
    const left = await run.workload.terminate(graceMs || this.o.graceMs);
    run.leftoverPids = left;
    if (left.length === 0) await run.finished;
    beforeEvent?.();
    run.holdEvent = false;
    // A run its lease holder ended (Cancel, ReleaseLease, a new Run or takeover) is not published:
    // the holder has the answer in its reply, and in a recovery hundreds of such events would
    // queue ahead of the ones that matter. Others are published once the host's state says what
    // the event says (a freed host after a loss).
    if (run.exited && kind !== "cancelled") this.publishEnd(run);
    return left;
  }

  /** Processes of the last run that outlived SIGKILL, looked at afresh (none once they are gone). */
  private survivors(): number[] {
    const run = this.run;
    if (!run?.workload || run.leftoverPids.length === 0) return [];
    run.leftoverPids = run.workload.members();
    return run.leftoverPids;
  }

  /** Refuse to lease or start anything beside processes that outlived SIGKILL. */
  private requireClean(leftoverPids: readonly number[]): void {
    const run = this.run;
    if (leftoverPids.length === 0 || !run) return;
    throw new HostNotClean(
      `${leftoverPids.length} process(es) of job ${run.req.jobId} attempt ${run.req.attempt} outlived SIGKILL (pids ${leftoverPids.join(", ")})`,
      { jobId: run.req.jobId, attempt: run.req.attempt, leftoverPids: [...leftoverPids] },
    );
  }

  /** Cancel the run under the lease; returns once no process of its group is left. */
  cancel(req: { leaseId: string; epoch: number; graceMs: number }): Promise<CancelReply> {
    return this.serial.run(async () => {
      await this.expireIfDue();
      const cur = this.requireLease(req.leaseId, req.epoch);
      const wasRunning = !!this.run?.workload && !this.run.exited;
      const leftoverPids = await this.stopRun("cancelled", req.graceMs);
      // The holder cancels to keep the host for its next attempt (an in-place restart): the lease
      // runs its full TTL again from here, as no run of it heartbeats any more.
      if (this.lease === cur) this.setLease(cur.leaseId, cur.jobId, cur.epoch, cur.ttlMs);
      return { wasRunning, leftoverPids, status: this.status() };
    });
  }

  private runReply(run: RunRecord, alreadyRunning: boolean): RunReply {
    const started = run.workload !== undefined;
    return {
      started,
      alreadyRunning,
      pid: run.workload?.pid ?? 0,
      startedAtMs: run.startedAt,
      resultFile: run.files.resultFile,
      errorFile: run.files.errorFile,
      errorJson: !started && run.error ? JSON.stringify(run.error) : "",
    };
  }

  // ---- status, output, results --------------------------------------------------------------

  status(): HostStatus {
    const run = this.lease && this.run && !this.isStale(this.run) ? this.run : undefined;
    let state: HostStatus["state"] = "idle";
    if (this.preempted) state = "preempted";
    else if (run && !run.exited) state = "running";
    else if (run) state = "exited";
    else if (this.lease) state = "leased";
    return {
      state,
      seq: this.seq,
      agent: this.agent,
      address: this.address,
      lease: this.leaseReply().lease,
      run: run ? runInfo(run, this.o.inlineResultBytes) : null,
      preempted: this.preempted,
    };
  }

  /** Follow the status: `listener` gets the current status now and every change after. */
  watch(listener: (s: HostStatus) => void): () => void {
    this.watchers.add(listener);
    listener(this.status());
    return () => this.watchers.delete(listener);
  }

  /**
   * Tails of the current run's stdout and stderr; with `jobId` (and `attempt`), only when the
   * current run is that one: a host that moved on to another job never hands out its output.
   */
  readOutput(maxBytes: number, jobId = "", attempt = 0): OutputReply {
    const run = this.run;
    if (jobId && !isRunOf(run, jobId, attempt)) {
      const which = attempt > 0 ? `job ${jobId} attempt ${attempt}` : `job ${jobId}`;
      throw new RunNotFound(
        `no output of ${which} on this host: it never ran it here, or has run another since`,
      );
    }
    const w = run?.workload;
    return {
      stdout: w ? w.stdout.read(maxBytes) : Buffer.alloc(0),
      stderr: w ? w.stderr.read(maxBytes) : Buffer.alloc(0),
      stdoutTotal: w?.stdout.total ?? 0,
      stderrTotal: w?.stderr.total ?? 0,
    };
  }

  /**
   * The whole result of the latest run (of `jobId`/`attempt` when given); for an earlier run of
   * that job and attempt, what its result file on disk still holds.
   */
  async readResult(jobId: string, attempt: number): Promise<ResultReply> {
    const absent = { present: false, resultJson: "", resultBytes: 0 };
    const run = this.run;
    if (run && (!jobId || isRunOf(run, jobId, attempt))) {
      if (run.resultJson === undefined) return absent;
      return { present: true, resultJson: run.resultJson, resultBytes: run.resultBytes };
    }
    // Another run took its place here, or the agent restarted: the file may still say it.
    if (!jobId || !attempt) return absent;
    const left = await readLeftResult(this.o.workDir, jobId, attempt, this.o.resultLimitBytes);
    return left ? { present: true, resultJson: left.json, resultBytes: left.bytes } : absent;
  }

  /** The slice as its head sees it (the SliceActor): its own status and its peers'. */
  sliceStatus(): SliceStatusReply {
    const head = this.status();
    const run = this.lease && this.run && !this.isStale(this.run) ? this.run : undefined;
    if (!run?.monitor) return { state: "idle", head, peers: [] };
    const peers: PeerStatus[] = run.monitor.snapshot();
    const state = sliceState(run, peers);
    return { state, head, peers };
  }

  private publishPeerLost(run: RunRecord, peer: PeerState): void {
    this.changed();
    this.events.publish(HOST_EVENTS_TOPIC, peerLostEvent(this.baseEvent("lost"), run, peer));
  }

  private changed(): void {
    this.seq++;
    if (this.watchers.size === 0) return;
    const s = this.status();
    for (const w of this.watchers) w(s);
  }

  // ---- events, preemption, shutdown ---------------------------------------------------------

  private baseEvent(kind: HostEventKind): HostEvent {
    return {
      version: 1,
      kind,
      eventId: randomUUID(),
      at: this.o.clock.now(),
      agent: this.agent,
      address: this.address,
    };
  }

  private publishEnd(run: RunRecord): void {
    const event = runEndEvent(this.baseEvent(run.endKind), run, this.o.inlineResultBytes);
    this.events.publish(HOST_EVENTS_TOPIC, event);
  }

  /**
   * Record that this host is being preempted and publish it once, to the host-events and the
   * preemption-notices topics, with the job, attempt and slice of what runs here (if anything).
   */
  reportPreemption(reason: string): void {
    if (this.preempted || this.events.muted) return;
    this.preempted = true;
    const event = this.baseEvent("preempted");
    event.reason = reason;
    const run = this.run;
    if (this.lease)
      Object.assign(event, { leaseId: this.lease.leaseId, jobId: this.lease.jobId, epoch: this.lease.epoch });
    if (run && !this.isStale(run)) {
      Object.assign(event, {
        attempt: run.req.attempt,
        sliceName: run.req.sliceName,
        sliceIndex: run.req.sliceIndex,
        hostIndex: run.req.hostIndex,
      });
    }
    this.changed();
    this.events.publish(HOST_EVENTS_TOPIC, event);
    this.events.publish(PREEMPTION_NOTICES_TOPIC, event);
  }

  /** Whatever runs here and under which lease, for a notice written by someone else (the provider). */
  snapshot(): { lease: Lease | null; run: RunInfo | null } {
    const s = this.status();
    return { lease: s.lease, run: s.run };
  }

  private assertServing(): void {
    if (this.stopping) throw new AgentStopping("agent is shutting down");
    if (this.preempted) throw new AgentStopping("host is being preempted");
  }

  /** The host dies as a preempted VM would: workloads SIGKILLed at once, nothing more published. */
  async kill(): Promise<void> {
    this.events.muted = true;
    this.stopping = true;
    this.prefork?.close();
    this.lease?.cancelTimer();
    this.run?.monitor?.stop();
    this.peerClients?.closeAll();
    await this.run?.workload?.kill();
    this.watchers.clear();
  }

  /** Shut down: cancel the workload (graceful), wait for pending events, stop watchers. */
  async close(graceMs = this.o.graceMs): Promise<void> {
    this.stopping = true;
    this.prefork?.close();
    await this.serial.run(async () => {
      await this.stopRun("shutdown", graceMs, "agent shutting down");
      this.lease?.cancelTimer();
      this.run?.monitor?.stop();
      this.peerClients?.closeAll();
    });
    await this.events.drain();
    this.watchers.clear();
  }
}
