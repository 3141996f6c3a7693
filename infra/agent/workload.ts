import { type ChildProcess, spawn } from "node:child_process";
import { OutputTail } from "./output-tail.js";
import type { Prefork } from "./prefork.js";
import {
  environHas,
  groupExists,
  groupMembers,
  processesWithEnv,
  readProc,
  sharedScan,
  terminateGroup,
  trackWorkloadSession,
} from "./process-group.js";

/** How long after the leader's exit its stdio may take to close before the exit is reported anyway. */
const STDIO_DRAIN_MS = 1000;

/** How a workload ended: an exit code, or the signal that killed it. */
export interface WorkloadExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  endedAt: number;
}

/** What to start: argv, the complete environment, the working directory. */
export interface WorkloadLaunch {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /** Bytes of stdout/stderr kept (each). */
  tailBytes: number;
  /** A shell forked ahead of time to become the workload (spawned as usual when none is ready). */
  prefork?: Prefork | undefined;
}

/** The variable every process of a run inherits, naming its own result file: how strays are known. */
const RUN_MARKER = "GANGWAY_RESULT_FILE";

const isAlive = (pid: number) => {
  const p = readProc(pid);
  return p !== undefined && p.state !== "Z" && p.state !== "X";
};

const union = (...lists: number[][]) => [...new Set(lists.flat())].sort((a, b) => a - b);

/**
 * A workload running as its own process group (and session): everything it starts can be found
 * in /proc and signalled together, so cancelling it leaves nothing behind. Members are its group,
 * its session and descendants of either; once the leader is gone, also processes that left both
 * (setsid) and carry the run's `GANGWAY_RESULT_FILE` in their environment ("strays").
 */
export class Workload {
  readonly stdout: OutputTail;
  readonly stderr: OutputTail;
  readonly exited: Promise<WorkloadExit>;
  private readonly child: ChildProcess;
  private exit: WorkloadExit | undefined;
  /**
   * Set once /proc showed no member of the group or session after the leader's exit; the pgid
   * may be reused after that (it is kept while a process of either lives).
   */
  private groupGone = false;
  /** Set once a stop found nothing of the run left, strays included: later stops return at once. */
  private stopped = false;
  /** The leader's exit seen: whether anything of the group or session outlived it, being decided. */
  private goneCheck: Promise<void> | undefined;
  /** `GANGWAY_RESULT_FILE=…` of the run (unset: strays are not looked for). */
  private readonly marker: string | undefined;
  /** Strays that outlived SIGKILL at the last stop. */
  private strayLeft: number[] = [];

  private constructor(child: ChildProcess, tailBytes: number, now: () => number, resultFile?: string) {
    this.child = child;
    this.marker = resultFile ? `${RUN_MARKER}=${resultFile}` : undefined;
    const untrack = child.pid ? trackWorkloadSession(child.pid) : () => {};
    this.stdout = new OutputTail(tailBytes);
    this.stderr = new OutputTail(tailBytes);
    child.stdout?.on("data", (b: Buffer) => this.stdout.push(b));
    child.stderr?.on("data", (b: Buffer) => this.stderr.push(b));
    this.exited = new Promise((resolve) => {
      // "close" waits for stdio to drain, so the tails are complete when the exit is reported;
      // a process that escaped the group may hold the pipes open, so "exit" + a short wait also ends it.
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.exit) return;
        this.exit = { code, signal, endedAt: now() };
        resolve(this.exit);
      };
      child.once("close", finish);
      child.once("exit", (code, signal) => {
        untrack();
        // Once group and session are empty the id may be reused by an unrelated process: never
        // signal it again. A helper in a group of its own (same session) keeps it from that.
        this.goneCheck = this.checkGone();
        setTimeout(() => finish(code, signal), STDIO_DRAIN_MS).unref();
      });
    });
  }

  private async checkGone(): Promise<void> {
    if (this.pid === 0 || groupExists(this.pid)) return;
    if (groupMembers(this.pid, await sharedScan()).length === 0) this.groupGone = true;
  }

  /** The process id of the group leader (= the process group id). */
  get pid(): number {
    return this.child.pid ?? 0;
  }

  get hasExited(): boolean {
    return this.exit !== undefined;
  }

  /**
   * Start a workload; resolves once the process runs, rejects (with the spawn error: missing
   * command, bad cwd …) when it could not start.
   */
  static start(launch: WorkloadLaunch, now: () => number = Date.now): Promise<Workload> {
    const [file, ...args] = launch.argv;
    if (file === undefined) return Promise.reject(new Error("empty argv"));
    const resultFile = launch.env[RUN_MARKER];
    try {
      const ready = launch.prefork?.launch(launch.argv, launch.env, launch.cwd);
      if (ready) return Promise.resolve(new Workload(ready, launch.tailBytes, now, resultFile));
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(file, args, {
          cwd: launch.cwd,
          env: launch.env,
          detached: true,
          stdio: ["ignore", "pipe", "pipe"],
        });
      } catch (e) {
        reject(e);
        return;
      }
      const onError = (e: Error) => reject(e);
      child.once("error", onError);
      child.once("spawn", () => {
        child.off("error", onError);
        // Later errors (a failed kill) must not become unhandled 'error' events.
        child.on("error", () => {});
        resolve(new Workload(child, launch.tailBytes, now, resultFile));
      });
    });
  }

  /** Live pids of the group, its session and strays that outlived a stop (empty once all are gone). */
  members(): number[] {
    if (this.stopped || this.pid === 0) return [];
    const marker = this.marker;
    this.strayLeft = marker ? this.strayLeft.filter((pid) => isAlive(pid) && environHas(pid, marker)) : [];
    let members: number[] = [];
    if (!this.groupGone) {
      members = groupMembers(this.pid);
      if (members.length === 0 && this.hasExited) this.groupGone = true;
    }
    const all = union(members, this.strayLeft);
    if (all.length === 0 && this.groupGone) this.stopped = true;
    return all;
  }

  /**
   * SIGTERM the whole group, its session and strays, wait `graceMs`, SIGKILL, and wait until no
   * member is left and the leader's exit was seen. Returns pids that refused to die (normally none).
   */
  async terminate(graceMs: number): Promise<number[]> {
    if (this.stopped) return [];
    await this.goneCheck;
    let left: number[] = [];
    if (!this.groupGone) {
      left = await terminateGroup(this.pid, { graceMs, leaderExited: this.exited });
      if (left.length === 0) {
        await this.exited;
        this.groupGone = true;
      }
    }
    // Strays are looked for once, when the group is gone: they are rare (a process that left
    // group and session), and every look is a scan of the machine's processes that hundreds of
    // hosts stopping at once would wait on — a second look, to give them the group's grace,
    // made a teardown of 256 hosts 521 ms instead of 395 (bench/control-plane.ts, medians of 5).
    // Found then, they get SIGKILL.
    const strayLeft = await this.stopStrays(0);
    this.strayLeft = strayLeft;
    const all = union(left, strayLeft);
    if (all.length === 0 && this.groupGone) this.stopped = true;
    return all;
  }

  /**
   * Find the run's strays (one environment scan shared by every stop of the moment) and stop
   * each one's process group (its session and descendants with it); returns the survivors.
   */
  private async stopStrays(graceMs: number): Promise<number[]> {
    if (!this.marker) return [];
    const groups = new Set<number>();
    for (const p of await processesWithEnv(this.marker)) {
      // The group's and the session's are the leader's stop's. A setsid'd child of a live member
      // is found both ways: stopping it twice is harmless.
      if (p.pgid === this.pid || p.sid === this.pid) continue;
      groups.add(p.pgid > 1 ? p.pgid : p.pid);
    }
    const left = await Promise.all([...groups].map((g) => terminateGroup(g, { graceMs })));
    return union(...left);
  }

  /** SIGKILL at once, as a dying VM would; waits until the group is gone. */
  kill(): Promise<number[]> {
    return this.terminate(0);
  }
}
