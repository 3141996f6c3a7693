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

/** Send `signal` to the group and to every member found; never throws (members may vanish). */
export function signalGroup(leader: number, signal: NodeJS.Signals): number[] {
  const members = groupMembers(leader);
  try {
    process.kill(-leader, signal);
  } catch {
    // The group may be gone already, or its leader exited and it has no members left.
  }
  for (const pid of members) {
    try {
      process.kill(pid, signal);
    } catch {
      // Gone between the scan and the signal.
    }
  }
  return members;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Stop a process group: SIGTERM to every member, wait up to `graceMs` for it to empty, then
 * SIGKILL and wait (up to `killWaitMs`) until /proc shows no member. Returns the pids still there
 * (empty unless something refused to die, e.g. stuck in uninterruptible I/O).
 *
 * @example
 * const leftovers = await terminateGroup(child.pid, { graceMs: 5000 });
 */
export async function terminateGroup(
  leader: number,
  { graceMs, killWaitMs = 10_000, pollMs = 10 }: { graceMs: number; killWaitMs?: number; pollMs?: number },
): Promise<number[]> {
  if (groupMembers(leader).length === 0) return [];
  signalGroup(leader, "SIGTERM");
  const termDeadline = Date.now() + graceMs;
  while (Date.now() < termDeadline) {
    if (groupMembers(leader).length === 0) return [];
    await sleep(pollMs);
  }
  const killDeadline = Date.now() + killWaitMs;
  for (;;) {
    const left = signalGroup(leader, "SIGKILL");
    if (left.length === 0) return [];
    if (Date.now() >= killDeadline) return left;
    await sleep(pollMs);
  }
}
