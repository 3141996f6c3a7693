import { mkdir, unlink } from "node:fs/promises";
import { resolve } from "node:path";
import { agentRunFiles } from "../../core/env-contract.js";
import { WorkloadStartFailed } from "../../core/errors.js";
import { serializeError } from "../../core/serialized-error.js";
import type { RunRequest } from "../../functions/clients/agent/messages.js";
import type { Prefork } from "./prefork.js";
import { clearRunFile } from "./run-files.js";
import { newRunRecord, type RunRecord } from "./run-record.js";
import { killHolders } from "./vfio.js";
import { Workload } from "./workload.js";

/**
 * Delete the libtpu lockfile if it is there; best effort (a file we cannot delete is not worth a
 * failed run). A bare unlink, never a recursive rm: the path is configured, not ours to empty.
 */
const removeLockfile = (path: string) =>
  unlink(path).catch(() => {
    // not there, a directory in its place, or no permission: leave it
  });

/** What preparing a host and starting a workload needs of the agent's configuration. */
export interface RunStartOptions {
  workDir: string;
  lockfilePath: string;
  killVfioHolders: boolean;
  vfioPath: string;
  baseEnv: Record<string, string>;
  tailBytes: number;
  /** The agent's working directory: a run's default cwd. */
  cwd: string;
  now: () => number;
  log: (line: string) => void;
  /** The agent's prestarted shell, if it keeps one. */
  prefork?: Prefork | undefined;
}

/**
 * Make the host ready (delete the libtpu lockfile, kill /dev/vfio holders if asked, a clean run
 * directory) and start the workload with the inherited environment + the request's + the agent's
 * own GANGWAY_RESULT_FILE / GANGWAY_ERROR_FILE. A workload that cannot start gives a record that
 * has already ended with a WorkloadStartFailed error (and no workload).
 */
export async function prepareAndStart(req: RunRequest, o: RunStartOptions): Promise<RunRecord> {
  if (o.killVfioHolders) {
    const killed = killHolders(o.vfioPath);
    if (killed.length > 0) o.log(`killed holders of ${o.vfioPath}: ${killed.join(", ")}`);
  }
  const files = agentRunFiles(o.workDir, req, req.sliceIndex, req.hostIndex);
  // Off the event loop: a directory made while the disk's journal is busy (the engine and the
  // emulator write theirs) can block for a millisecond, and a machine of simulated hosts makes
  // hundreds at once.
  await Promise.all([
    removeLockfile(o.lockfilePath),
    mkdir(files.dir, { recursive: true }),
    // A previous workload of this run may have left a directory or a FIFO there: cleared too.
    clearRunFile(files.resultFile),
    clearRunFile(files.errorFile),
  ]);
  const env = {
    ...o.baseEnv,
    ...req.env,
    GANGWAY_RESULT_FILE: files.resultFile,
    GANGWAY_ERROR_FILE: files.errorFile,
  };
  const record = newRunRecord(req, files, o.now());
  // The job spec's contract: no cwd → the agent's own (a relative one resolves against it too).
  const cwd = resolve(o.cwd, req.cwd || ".");
  try {
    record.workload = await Workload.start(
      { argv: req.argv, env, cwd, tailBytes: o.tailBytes, prefork: o.prefork },
      o.now,
    );
  } catch (e) {
    const cause = e as NodeJS.ErrnoException;
    record.exited = true;
    record.endedAt = o.now();
    record.reason = "start failed";
    record.error = serializeError(
      new WorkloadStartFailed(`could not start ${JSON.stringify(req.argv[0])}: ${cause.message}`, {
        argv0: req.argv[0],
        cwd,
        code: cause.code,
      }),
    );
  }
  return record;
}
