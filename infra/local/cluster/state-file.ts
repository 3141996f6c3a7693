import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";

/** Where `gangway cluster` says how to reach it, unless told otherwise. */
export const DEFAULT_STATE_FILE = join(tmpdir(), "gangway-local-cluster.json");

/** What a running `gangway cluster` leaves for `gangway preempt` and other tools. */
export const ClusterStateSchema = z.object({
  /** The admin endpoint, `http://127.0.0.1:PORT`. */
  admin: z.string().url(),
  /** The file holding the bearer token of the agents and the admin endpoint. */
  tokenFile: z.string(),
  pid: z.number().int(),
});
/** A parsed state file. */
export type ClusterState = z.infer<typeof ClusterStateSchema>;

/** Write the state file atomically, readable by its owner only (it names the token file). */
export function writeClusterState(path: string, state: ClusterState): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(state)}\n`, { mode: 0o600 });
    renameSync(tmp, path);
  } catch (e) {
    // Nothing of a failed write is left in a shared /tmp.
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Read a state file, or throw a clear error naming the file. */
export function readClusterState(path: string): ClusterState {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(
      `no running local cluster found in ${path} (${(e as Error).message}); start one with gangway cluster`,
    );
  }
  const parsed = ClusterStateSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${path} is not a local cluster state file`);
  return parsed.data;
}

/** Remove the state file if it is still ours (another cluster may have replaced it). */
export function removeClusterState(path: string, pid = process.pid): void {
  try {
    const state = ClusterStateSchema.safeParse(JSON.parse(readFileSync(path, "utf8")));
    if (state.success && state.data.pid === pid) rmSync(path, { force: true });
  } catch {
    // already gone
  }
}
