import { type ChildProcess, spawn } from "node:child_process";
import { OutputTail } from "./output-tail.js";
import type { Prefork } from "./prefork.js";
import { groupExists, groupMembers, terminateGroup } from "./process-group.js";

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

/**
 * A workload running as its own process group (and session): everything it starts can be found
 * in /proc and signalled together, so cancelling it leaves nothing behind.
 */
export class Workload {
  readonly stdout: OutputTail;
  readonly stderr: OutputTail;
  readonly exited: Promise<WorkloadExit>;
  private readonly child: ChildProcess;
  private exit: WorkloadExit | undefined;
  /** Set once /proc showed no member after the leader's exit; the pgid may be reused after that. */
  private groupGone = false;

  private constructor(child: ChildProcess, tailBytes: number, now: () => number) {
    this.child = child;
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
        // Once the group is empty its id may be reused by an unrelated process: never signal it again.
        if (!groupExists(this.pid)) this.groupGone = true;
        setTimeout(() => finish(code, signal), STDIO_DRAIN_MS).unref();
      });
    });
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
    try {
      const ready = launch.prefork?.launch(launch.argv, launch.env, launch.cwd);
      if (ready) return Promise.resolve(new Workload(ready, launch.tailBytes, now));
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
        resolve(new Workload(child, launch.tailBytes, now));
      });
    });
  }

  /** Live pids of the group (empty once it is gone). */
  members(): number[] {
    if (this.groupGone || this.pid === 0) return [];
    const members = groupMembers(this.pid);
    if (members.length === 0 && this.hasExited) this.groupGone = true;
    return members;
  }

  /**
   * SIGTERM the whole group, wait `graceMs`, SIGKILL, and wait until no member is left and the
   * leader's exit was seen. Returns pids that refused to die (normally none).
   */
  async terminate(graceMs: number): Promise<number[]> {
    if (this.groupGone) return [];
    const left = await terminateGroup(this.pid, { graceMs, leaderExited: this.exited });
    if (left.length === 0) {
      await this.exited;
      this.groupGone = true;
    }
    return left;
  }

  /** SIGKILL at once, as a dying VM would; waits until the group is gone. */
  kill(): Promise<number[]> {
    return this.terminate(0);
  }
}
