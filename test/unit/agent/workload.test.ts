import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readProc } from "../../../infra/agent/process-group.js";
import { Workload } from "../../../infra/agent/workload.js";

let dir: string;
/** Pids a test started: whatever the code under test did, none outlives the test. */
let started: number[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gangway-workload-unit-"));
  started = [];
});
afterEach(() => {
  for (const pid of alive(started)) process.kill(pid, "SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** Pids among `pids` that /proc shows alive (zombies count as gone: PID 1 may never reap them). */
const alive = (pids: number[]) =>
  pids.filter((pid) => {
    const s = readProc(pid)?.state;
    return s !== undefined && s !== "Z" && s !== "X";
  });

/** Start `script` under bash as a workload of a run whose result file lies in `dir`. */
const start = (script: string) =>
  Workload.start({
    argv: ["bash", "-c", script],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", GANGWAY_RESULT_FILE: join(dir, "result.json") },
    cwd: dir,
    tailBytes: 1024,
  });

/** The pid the workload wrote to `file`, noted for the clean-up. */
const pidIn = (file: string) => {
  const pid = Number(readFileSync(file, "utf8").trim());
  expect(pid).toBeGreaterThan(0);
  started.push(pid);
  return pid;
};

describe("Workload after its leader ended by itself", () => {
  it("still sees and stops a helper in a process group of its own (same session)", async () => {
    const pidFile = join(dir, "helper.pid");
    // Job control puts the background job in its own group; the leader then exits 0.
    const w = await start(`set -m; sleep 600 & echo $! > ${pidFile}; exit 0`);
    started.push(w.pid);
    expect((await w.exited).code).toBe(0);
    const helper = pidIn(pidFile);
    expect(readProc(helper)).toMatchObject({ sid: w.pid });
    expect(readProc(helper)?.pgid).not.toBe(w.pid);
    // The group is empty, the session is not: the run is not over.
    expect(w.members()).toEqual([helper]);
    expect(await w.terminate(2000)).toEqual([]);
    expect(alive([helper])).toEqual([]);
    expect(w.members()).toEqual([]);
    expect(await w.terminate(2000)).toEqual([]);
  });

  it("gives a helper that ignores SIGTERM its grace, then SIGKILL", async () => {
    const pidFile = join(dir, "helper.pid");
    const w = await start(
      `set -m; bash -c 'trap "" TERM; echo $$ > ${pidFile}; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 & ` +
        `while [ ! -s ${pidFile} ]; do sleep 0.02; done; exit 0`,
    );
    started.push(w.pid);
    await w.exited;
    const helper = pidIn(pidFile);
    const t0 = Date.now();
    expect(await w.terminate(300)).toEqual([]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(alive([helper])).toEqual([]);
  });

  it("stops a helper that left group and session (setsid) by the run's GANGWAY_RESULT_FILE", async () => {
    const pidFile = join(dir, "escaped.pid");
    // The escapee is orphaned once the leader exits: no group, session or parent leads to it.
    const w = await start(
      `setsid bash -c 'echo $$ > ${pidFile}; exec sleep 600' & ` +
        `while [ ! -s ${pidFile} ]; do sleep 0.02; done; exit 0`,
    );
    started.push(w.pid);
    await w.exited;
    const escaped = pidIn(pidFile);
    expect(readProc(escaped)).toMatchObject({ pgid: escaped, sid: escaped });
    expect(await w.terminate(2000)).toEqual([]);
    expect(alive([escaped])).toEqual([]);
  });

  it("leaves alone a process of another run (another result file)", async () => {
    const pidFile = join(dir, "other.pid");
    const w = await start(
      `GANGWAY_RESULT_FILE=${join(dir, "other-run.json")} setsid bash -c 'echo $$ > ${pidFile}; exec sleep 600' & ` +
        `while [ ! -s ${pidFile} ]; do sleep 0.02; done; exit 0`,
    );
    started.push(w.pid);
    await w.exited;
    const other = pidIn(pidFile);
    expect(await w.terminate(2000)).toEqual([]);
    expect(alive([other])).toEqual([other]);
  });
});
