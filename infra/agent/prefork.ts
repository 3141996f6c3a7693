import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, existsSync, statSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
import { trackWorkloadSession } from "./process-group.js";

/** Where the prestarted shell finds `env` to exec the workload with exactly its environment. */
const ENV_BINARY = "/usr/bin/env";
const SHELL = "/bin/sh";

/** Quote one word for a POSIX shell: single quotes, each `'` written as `'"'"'`. */
export const shellQuote = (word: string): string => `'${word.replaceAll("'", `'"'"'`)}'`;

/** Why a workload cannot be started through a prestarted shell, or `undefined` when it can. */
function unsuitable(argv: readonly string[], env: Readonly<Record<string, string>>): string | undefined {
  const [file] = argv;
  if (file === undefined || file === "") return "empty argv";
  // `env` would read a first word holding `=` as an assignment.
  if (file.includes("=")) return "argv[0] holds '='";
  for (const w of argv) if (w.includes("\0")) return "argv holds a NUL byte";
  for (const [k, v] of Object.entries(env)) {
    if (k === "" || k.includes("=") || k.includes("\0") || v.includes("\0")) return `bad env name ${k}`;
  }
  return undefined;
}

const executable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
};

/** What `execvp` would run for `file` with `env`'s PATH, or `undefined` when nothing is found. */
export function resolveExecutable(file: string, env: Readonly<Record<string, string>>, cwd: string) {
  if (file.includes("/")) {
    const path = resolve(cwd, file);
    return executable(path) ? path : undefined;
  }
  // glibc's default when PATH is unset.
  const dirs = (env.PATH ?? "/bin:/usr/bin").split(delimiter);
  for (const dir of dirs) {
    const path = resolve(cwd, join(dir || ".", file));
    if (executable(path)) return path;
  }
  return undefined;
}

/** Launches found possible lately (cwd, command, PATH) → until when (`performance.now()`). */
const launchable = new Map<string, number>();
/** How long a launch found possible is taken as possible without looking again. */
const LAUNCHABLE_MS = 1000;

/**
 * Throw the spawn-like ENOENT error when `cwd` is not a directory or `file` is not found. A
 * success is remembered for a second: the hosts of one machine (a simulated cluster) all start
 * the same command at once; a command removed in that second fails in the shell instead (127).
 */
function checkLaunchable(file: string, env: Readonly<Record<string, string>>, cwd: string): void {
  const key = `${cwd}\0${file}\0${env.PATH ?? ""}`;
  const now = performance.now();
  if ((launchable.get(key) ?? 0) > now) return;
  if (!existsSync(cwd) || !statSync(cwd).isDirectory()) throw spawnError(file, `no directory ${cwd}`);
  if (resolveExecutable(file, env, cwd) === undefined) throw spawnError(file, "no such executable");
  if (launchable.size >= 256) launchable.clear();
  launchable.set(key, now + LAUNCHABLE_MS);
}

/** An error shaped like the one `child_process.spawn` gives for a missing command or cwd. */
function spawnError(file: string, what: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`spawn ${file} ENOENT (${what})`);
  e.code = "ENOENT";
  e.syscall = `spawn ${file}`;
  e.path = file;
  return e;
}

/** A name the shell can `export` (others go through `env -i`). */
const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The script a prestarted shell runs: one compound command, so the shell has read all of it
 * before it acts. The shell sets the workload's environment itself and `exec`s it: an `env -i`
 * in between costs a second exec per host (about a millisecond here, as much as the rest of a
 * start). The shell was forked with an empty environment; what it exports of its own after `cd`
 * (PWD, OLDPWD) is unset first, so the workload gets exactly `env`. Without PATH in `env`, the
 * command is looked up as execvp would (glibc's /bin:/usr/bin, not the shell's default), and no
 * PATH is exported. Names the shell cannot export, or an argv[0] its `exec` would read as an
 * option, go through `env -i`.
 */
export function launchScript(argv: readonly string[], env: Readonly<Record<string, string>>, cwd: string) {
  const words = argv.map(shellQuote).join(" ");
  const entries = Object.entries(env);
  const enter = `cd ${shellQuote(cwd)} || exit 127;`;
  if (argv[0]?.startsWith("-") || !entries.every(([k]) => SHELL_NAME.test(k))) {
    const pairs = entries.map(([k, v]) => shellQuote(`${k}=${v}`));
    return `{ ${enter} exec ${ENV_BINARY} -i -- ${pairs.join(" ")} ${words} </dev/null; }\n`;
  }
  const exports =
    entries.length > 0 ? ` export ${entries.map(([k, v]) => `${k}=${shellQuote(v)}`).join(" ")};` : "";
  const path = "PATH" in env ? "" : " PATH=/bin:/usr/bin;";
  return `{ ${enter} unset OLDPWD PWD;${path}${exports} exec ${words} </dev/null; }\n`;
}

/**
 * One shell forked ahead of time (in its own session, empty environment), waiting on its stdin
 * for the workload to become. Forking a large Node process costs milliseconds (page tables);
 * with hundreds of simulated hosts in one process those forks add up on the Run path, so the
 * agent forks its next shell while nothing waits for it — as Ray prestarts its workers.
 *
 * @example
 * const prefork = new Prefork();
 * const child = prefork.launch(["python", "train.py"], env, "/srv/job"); // undefined: spawn yourself
 */
/**
 * Forks for every agent of this process, one at a time and only after a quiet spell with no
 * launch: a fork blocks the event loop for milliseconds, so refills wait until nobody is asking
 * to start anything, and then take at most about half of the loop's time.
 */
class ForkQueue {
  private readonly waiting = new Set<Prefork>();
  private timer: NodeJS.Timeout | undefined;
  private quietMs = 0;

  /** Fork for `p` once the process has been quiet for `quietMs`. */
  request(p: Prefork, quietMs: number): void {
    this.waiting.add(p);
    this.quietMs = quietMs;
    this.arm(quietMs);
  }

  cancel(p: Prefork): void {
    this.waiting.delete(p);
  }

  /** A launch happened: postpone refills. */
  busy(): void {
    if (this.waiting.size > 0) this.arm(this.quietMs);
  }

  private arm(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.next(), ms);
    this.timer.unref();
  }

  private next(): void {
    const [p] = this.waiting;
    if (!p) return;
    this.waiting.delete(p);
    const t0 = performance.now();
    p.fork();
    if (this.waiting.size > 0) this.arm(Math.max(1, performance.now() - t0));
  }
}

const forks = new ForkQueue();

/** Past this many agents in one process, refills wait for a quiet second. */
const MANY_AGENTS = 8;

export class Prefork {
  private ready: ChildProcess | undefined;
  /** Forget the waiting shell's session (its environment is empty: no scan needs to read it). */
  private untrack: () => void = () => {};
  private closed = false;

  /** Whether this machine has what a prestarted shell needs (`/bin/sh`, `/usr/bin/env`). */
  static supported(): boolean {
    return process.platform === "linux" && existsSync(SHELL) && existsSync(ENV_BINARY);
  }

  private readonly quietMs: number;

  /**
   * `quietMs`: how long the process must have started no workload before the next shell is
   * forked (off the Run path). By default 5 ms for an agent alone in its process (a fork there
   * is cheap, the Run's answer has gone by then, and the next Run should find its shell), a second where many agents share one (a
   * simulated cluster: hundreds of forks would hold up the Runs still coming). The first shell
   * is forked as soon as the queue allows.
   */
  constructor(quietMs?: number) {
    Prefork.live++;
    this.quietMs = quietMs ?? (Prefork.live > MANY_AGENTS ? 1000 : 5);
    forks.request(this, 0);
  }

  /** Preforks open in this process. */
  private static live = 0;

  /**
   * Hand the waiting shell its workload. Returns the child (already spawned: `pid`, stdio and
   * exit events are the workload's from now on), `undefined` when no shell is ready or the launch
   * does not suit one (the caller spawns as usual), or throws the spawn-like ENOENT error when
   * the command or cwd does not exist.
   */
  launch(
    argv: readonly string[],
    env: Readonly<Record<string, string>>,
    cwd: string,
  ): ChildProcess | undefined {
    const child = this.ready;
    if (!child || child.exitCode !== null || child.signalCode !== null || !child.stdin?.writable)
      return undefined;
    if (unsuitable(argv, env) !== undefined) return undefined;
    const file = argv[0] as string;
    checkLaunchable(file, env, cwd);
    this.ready = undefined;
    // The workload tracks its own session from now on.
    this.untrack();
    child.removeAllListeners("exit");
    // From now on it is a workload: it keeps the agent's process alive like any other.
    child.ref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as { ref?: () => void } | null)?.ref?.();
    child.stdin.end(launchScript(argv, env, cwd));
    forks.busy();
    forks.request(this, this.quietMs);
    return child;
  }

  /** The waiting shell's pid, when one is ready. */
  get waitingPid(): number | undefined {
    return this.ready?.pid;
  }

  /** Kill the waiting shell and fork no more. */
  close(): void {
    if (!this.closed) Prefork.live--;
    this.closed = true;
    forks.cancel(this);
    this.ready?.kill("SIGKILL");
    this.ready = undefined;
  }

  /** Fork the waiting shell now (the process-wide queue decides when). */
  fork(): void {
    if (this.closed || this.ready) return;
    let child: ChildProcess;
    try {
      child = spawn(SHELL, [], { env: {}, cwd: "/", detached: true, stdio: ["pipe", "pipe", "pipe"] });
    } catch {
      forks.request(this, this.quietMs);
      return;
    }
    child.on("error", () => {});
    child.stdin?.on("error", () => {});
    const untrack = child.pid ? trackWorkloadSession(child.pid) : () => {};
    this.untrack = untrack;
    // A shell that dies while waiting (killed from outside) is replaced later.
    child.once("exit", () => {
      untrack();
      if (this.ready === child) {
        this.ready = undefined;
        if (!this.closed) forks.request(this, this.quietMs);
      }
    });
    // Nothing of the waiting shell may keep the agent's process alive.
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr])
      (s as { unref?: () => void } | null)?.unref?.();
    this.ready = child;
  }
}
