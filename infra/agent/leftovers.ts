import { readdir, readFile } from "node:fs/promises";
import { GangwayError } from "../../core/errors.js";
import { lockDir } from "../dir-lock.js";
import { readProc, terminateGroup } from "./process-group.js";

/** Another live agent holds the work directory: starting would kill its workloads as leftovers. */
export class WorkDirInUse extends GangwayError {
  override readonly name = "WorkDirInUse";
}

/** The file in a claimed work dir saying which agent holds it (for the error a second one gets). */
export const OWNER_FILE = "agent-owner.json";

/** A work dir held by this agent until {@link WorkDirClaim.release}. */
export interface WorkDirClaim {
  /** The work dir's real path. */
  dir: string;
  /** Record the agent's address in the owner file once it is known (best effort). */
  noteAddress(address: string): Promise<void>;
  release(): Promise<void>;
}

/**
 * Hold `workDir` for this agent alone: a second agent on the same dir (same machine) fails with
 * WorkDirInUse naming the dir and, when it can tell, the holder ({@link lockDir}: the kernel frees
 * the lock when its holder dies, so a crashed agent leaves no stale lock for its successor).
 */
export async function claimWorkDir(workDir: string): Promise<WorkDirClaim> {
  const lock = await lockDir(workDir, "gangway-agent-workdir", OWNER_FILE, (dir, owner) => {
    const agent = typeof owner?.agent === "string" ? owner.agent : undefined;
    const who = owner?.pid ? ` (pid ${owner.pid}${agent ? `, ${agent}` : ""})` : "";
    return new WorkDirInUse(
      `work dir ${dir} is in use by another agent${who}; give each agent its own work dir (--work-dir)`,
      { workDir: dir, ...(owner ?? {}) },
    );
  });
  return {
    dir: lock.dir,
    noteAddress: (address) => lock.noteOwner({ agent: address }),
    release: () => lock.release(),
  };
}

/**
 * Process groups of workloads a previous life of an agent left running: processes whose
 * `GANGWAY_RESULT_FILE` lies under `workDir/runs/` (every run of an agent gets one there). An agent
 * that crashed leaves its detached workloads behind; they must not run on beside the next attempt.
 * Only safe while this agent holds `workDir` ({@link claimWorkDir}): a live agent's runs match too.
 */
export async function findLeftoverRuns(workDir: string): Promise<number[]> {
  // `runs/` as core's agentRunFiles lays them out: an agent whose work dir lies inside this one
  // (but not in its runs) is not taken for a predecessor.
  const prefix = `GANGWAY_RESULT_FILE=${workDir.replace(/\/+$/, "")}/runs/`;
  const self = readProc(process.pid);
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
    if (!info || info.state === "Z") continue;
    const group = info.pgid > 1 ? info.pgid : info.pid;
    // Never our own group or session (a workload of ours would be in neither, but be sure).
    if (self && (group === self.pgid || group === self.sid)) continue;
    groups.add(group);
  }
  return [...groups].sort((a, b) => a - b);
}

/**
 * SIGKILL every leftover run under `workDir` (and everything of its group), and wait (up to
 * `waitMs` per group, together) until /proc shows none of them: the agent serves only once they
 * no longer hold the devices and ports a new run needs. Returns the groups and any pid that
 * outlived the wait (stuck in uninterruptible I/O, say).
 */
export async function killLeftoverRuns(
  workDir: string,
  { waitMs = 10_000 }: { waitMs?: number } = {},
): Promise<{ groups: number[]; remaining: number[] }> {
  const groups = await findLeftoverRuns(workDir);
  const left = await Promise.all(groups.map((g) => terminateGroup(g, { graceMs: 0, killWaitMs: waitMs })));
  return { groups, remaining: [...new Set(left.flat())].sort((a, b) => a - b) };
}
