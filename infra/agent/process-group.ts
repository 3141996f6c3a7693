import { readdirSync, readFileSync } from "node:fs";

/** What /proc says about one process. */
export interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** One-letter state (`R`, `S`, `Z` …). A zombie holds nothing and counts as gone. */
  state: string;
}

/** Read /proc/<pid>/stat, or `undefined` when the process is gone. */
export function readProc(pid: number): ProcInfo | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const close = text.lastIndexOf(")");
  const rest = text.slice(close + 2).split(" ");
  return {
    pid,
    state: rest[0] ?? "?",
    ppid: Number(rest[1]),
    pgid: Number(rest[2]),
    sid: Number(rest[3]),
  };
}

/** Every live process on the machine (zombies excluded). */
export function listProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const info = readProc(Number(name));
    if (info && info.state !== "Z" && info.state !== "X") out.push(info);
  }
  return out;
}

let pendingScan: Promise<ProcInfo[]> | undefined;

/**
 * A scan of /proc taken after this call, shared by every caller waiting at the same time: with
 * hundreds of agents in one process cancelling at once, one scan serves them all.
 */
export function sharedScan(): Promise<ProcInfo[]> {
  pendingScan ??= new Promise((resolve) => {
    setImmediate(() => {
      pendingScan = undefined;
      resolve(listProcesses());
    });
  });
  return pendingScan;
}

/**
 * Sessions of this process's workloads (and of shells waiting to become one) whose leader is
 * alive: a workload's processes are its own run's (no process can join an existing session), so
 * an environment scan skips them.
 */
const workloadSessions = new Set<number>();

/** Note a live workload's session (its leader's pid); the returned function forgets it. */
export function trackWorkloadSession(sid: number): () => void {
  workloadSessions.add(sid);
  return () => {
    workloadSessions.delete(sid);
  };
}

/** Whether `/proc/<pid>/environ` (the environment `pid` was exec'd with) holds `entry` exactly. */
export function environHas(pid: number, entry: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(entry);
  } catch {
    return false; // gone, or not ours to read
  }
}

let pendingEnvScan: { wanted: Set<string>; found: Promise<Map<string, ProcInfo[]>> } | undefined;

/**
 * Live processes whose environment holds `entry` (`NAME=value`): how processes of a run are found
 * that left its group and its session (setsid) and whose parent is gone, so that nothing else
 * leads to them. One scan, taken after this call, serves every caller waiting at the same time
 * (hundreds of agents of one process stopping their runs at once). It reads the environment of
 * every process but this process's session and the sessions of live workloads
 * ({@link trackWorkloadSession}). A process that exec'd with an environment of its own is not found.
 */
export function processesWithEnv(entry: string): Promise<ProcInfo[]> {
  let scan = pendingEnvScan;
  if (!scan) {
    const wanted = new Set<string>();
    const pending = {
      wanted,
      found: sharedScan().then((all) => {
        if (pendingEnvScan === pending) pendingEnvScan = undefined;
        return matchEnvironments(all, wanted);
      }),
    };
    pendingEnvScan = scan = pending;
  }
  scan.wanted.add(entry);
  return scan.found.then((found) => found.get(entry) ?? []);
}

function matchEnvironments(all: ProcInfo[], wanted: ReadonlySet<string>): Map<string, ProcInfo[]> {
  const found = new Map<string, ProcInfo[]>();
  const self = readProc(process.pid);
  for (const p of all) {
    // sid 0: a kernel thread, or a session led from outside this pid namespace.
    if (p.pid === process.pid || p.sid === 0 || p.sid === self?.sid || workloadSessions.has(p.sid)) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${p.pid}/environ`, "latin1");
    } catch {
      continue; // gone meanwhile, or not ours to read
    }
    for (const v of environ.split("\0")) {
      if (!wanted.has(v)) continue;
      const list = found.get(v);
      if (list) list.push(p);
      else found.set(v, [p]);
    }
  }
  return found;
}

/**
 * Live processes that belong to the group led by `leader`: its process group, its session (a
 * workload that made its own group keeps the session), and descendants of either (one that called
 * setsid is still a child of a member while its parent lives).
 */
export function groupMembers(leader: number, all: ProcInfo[] = listProcesses()): number[] {
  const members = new Set<number>();
  for (const p of all) if (p.pgid === leader || p.sid === leader) members.add(p.pid);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of all) {
      if (!members.has(p.pid) && members.has(p.ppid)) {
        members.add(p.pid);
        grew = true;
      }
    }
  }
  return [...members].sort((a, b) => a - b);
}

/**
 * Descendants of `pid` (not `pid` itself) through /proc/<pid>/task/<tid>/children: a handful of
 * reads instead of a scan of every process. Empty when the kernel does not offer those files.
 */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0 && out.length < 100_000) {
    const p = queue.shift() as number;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      let text = "";
      try {
        text = readFileSync(`/proc/${p}/task/${tid}/children`, "latin1");
      } catch {
        continue;
      }
      for (const c of text.split(" ")) {
        if (/^\d+$/.test(c)) {
          out.push(Number(c));
          queue.push(Number(c));
        }
      }
    }
  }
  return out;
}

/** Whether any process (zombies included) is in process group `pgid`: one syscall. */
export function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const isAlive = (pid: number) => {
  const p = readProc(pid);
  return p !== undefined && p.state !== "Z" && p.state !== "X";
};

function signalAll(leader: number, pids: Iterable<number>, signal: NodeJS.Signals): void {
  try {
    process.kill(-leader, signal);
  } catch {
    // The group may be empty already.
  }
  signalPids(pids, signal);
}

function signalPids(pids: Iterable<number>, signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Gone between the scan and the signal.
    }
  }
}

/** Send `signal` to the group and to every member found by a full scan; never throws. */
export function signalGroup(leader: number, signal: NodeJS.Signals): number[] {
  const members = groupMembers(leader);
  signalAll(leader, members, signal);
  return members;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Stop a process group: SIGTERM to every member, wait up to `graceMs` for it to empty, then
 * SIGKILL and wait (up to `killWaitMs`) until /proc shows no member. Returns the pids still there
 * (empty unless something refused to die, e.g. stuck in uninterruptible I/O).
 *
 * Members are the group, its session and descendants of either. Waiting is cheap (one kill(2)
 * probe of the group plus the few members outside it); a full /proc scan confirms the end, and
 * is the judge whenever the cheap probe cannot be (zombies nobody reaps still count for kill(2)).
 *
 * @example
 * const leftovers = await terminateGroup(child.pid, { graceMs: 5000 });
 */
export async function terminateGroup(
  leader: number,
  {
    graceMs,
    killWaitMs = 10_000,
    leaderExited,
  }: {
    graceMs: number;
    killWaitMs?: number;
    /** Settles when the leader's exit is seen (its parent reaped it): the wait looks again at once. */
    leaderExited?: Promise<unknown>;
  },
): Promise<number[]> {
  // Most workloads are their group's only process: its exit ends the wait without a timer's delay.
  let leaderSeen = false;
  const seen = () => {
    leaderSeen = true;
  };
  const leaderExit = leaderExited?.then(seen, seen);
  // Known members outside the process group (they made their own group or session).
  const outside = new Set<number>();
  const learn = (pids: Iterable<number>) => {
    for (const pid of pids) {
      const p = readProc(pid);
      if (p && p.pgid !== leader) outside.add(pid);
    }
  };
  learn(descendants(leader));
  // No grace: straight to SIGKILL, as a vanishing VM would (no SIGTERM handler gets to run).
  let signal: NodeJS.Signals = graceMs > 0 ? "SIGTERM" : "SIGKILL";
  signalAll(leader, outside, signal);
  const signalled = new Set(outside);
  let members: number[] = [];
  let deadline = Date.now() + (signal === "SIGKILL" ? killWaitMs : graceMs);
  for (let i = 1; ; i++) {
    const cheapSaysGone = !groupExists(leader) && [...outside].every((pid) => !isAlive(pid));
    // Whenever the cheap probe says gone (and every 10th round) a full scan decides; it also finds
    // members no probe knows of (an orphan of the session whose parent died), which get the signal.
    if (cheapSaysGone || i % 10 === 0) {
      members = groupMembers(leader, await sharedScan());
      // A known member the scan no longer leads to (it left the session and its parent died) counts too.
      if (members.length === 0 && [...outside].every((pid) => !isAlive(pid))) return [];
      learn(members);
      // The group had its signal already; members outside it that the scan found get theirs once.
      const fresh = [...outside].filter((pid) => !signalled.has(pid));
      if (signal === "SIGTERM") signalPids(fresh, signal);
      for (const pid of fresh) signalled.add(pid);
    }
    if (Date.now() >= deadline) {
      if (signal === "SIGKILL") {
        const left = new Set(groupMembers(leader, await sharedScan()));
        for (const pid of outside) if (isAlive(pid)) left.add(pid);
        return [...left].sort((a, b) => a - b);
      }
      signal = "SIGKILL";
      deadline = Date.now() + killWaitMs;
    }
    if (signal === "SIGKILL") signalAll(leader, [...outside, ...members], signal);
    const nap = sleep(Math.min(2 * i, 20));
    await (leaderExit !== undefined && !leaderSeen ? Promise.race([nap, leaderExit]) : nap);
  }
}
