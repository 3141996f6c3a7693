import { readdirSync, readlinkSync } from "node:fs";

/**
 * Pids (other than this process) holding a file under `prefix` open, found through /proc/<pid>/fd.
 * On a TPU VM `/dev/vfio/…` holders keep the chips busy even after the libtpu lockfile is gone.
 */
export function findHolders(prefix: string): number[] {
  const holders: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target === prefix || target.startsWith(prefix.endsWith("/") ? prefix : `${prefix}/`)) {
          holders.push(pid);
          break;
        }
      } catch {
        // fd closed meanwhile
      }
    }
  }
  return holders;
}

/** SIGKILL every holder of a file under `prefix` (default `/dev/vfio`); returns the pids signalled. */
export function killHolders(prefix = "/dev/vfio"): number[] {
  const holders = findHolders(prefix);
  for (const pid of holders) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone, or not permitted: nothing more an agent can do
    }
  }
  return holders;
}
