import { readdir, readFile } from "node:fs/promises";
import { readProc, signalGroup } from "./process-group.js";

/**
 * Process groups of workloads a previous life of an agent left running: processes whose
 * `GANGWAY_RESULT_FILE` lies under `workDir` (every run of an agent gets one there). An agent that
 * crashed leaves its detached workloads behind; they must not run on beside the next attempt.
 */
export async function findLeftoverRuns(workDir: string): Promise<number[]> {
  const prefix = `GANGWAY_RESULT_FILE=${workDir.replace(/\/+$/, "")}/`;
  const groups = new Set<number>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let environ: string;
    try {
      environ = await readFile(`/proc/${entry}/environ`, "latin1");
    } catch {
      continue; // gone meanwhile, or not ours to read
    }
    if (!environ.split("\0").some((v) => v.startsWith(prefix))) continue;
    const info = readProc(Number(entry));
    if (info && info.state !== "Z") groups.add(info.pgid > 1 ? info.pgid : info.pid);
  }
  return [...groups].sort((a, b) => a - b);
}

/** SIGKILL every leftover run under `workDir` (and everything of its group); returns the groups. */
export async function killLeftoverRuns(workDir: string): Promise<number[]> {
  const groups = await findLeftoverRuns(workDir);
  for (const pgid of groups) signalGroup(pgid, "SIGKILL");
  return groups;
}
