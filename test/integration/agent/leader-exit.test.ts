import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readProc } from "../../../infra/agent/process-group.js";
import { alive, lease, pidsIn, runParams, startTestAgent, type TestAgent, until } from "./helpers.js";

let agent: TestAgent | undefined;
/** Pids a test's workloads reported: whatever the agent did, none outlives the test. */
let started: number[] = [];
afterEach(async () => {
  for (const pid of alive(started)) process.kill(pid, "SIGKILL");
  started = [];
  await agent?.close();
  agent = undefined;
});

/** The pid the workload wrote to `file`, once it is there (noted for the clean-up). */
async function pidFrom(file: string): Promise<number> {
  const [pid] = await until(() => (pidsIn(file).length > 0 ? pidsIn(file) : undefined));
  started.push(pid as number);
  return pid as number;
}

/** Wait until the agent recorded the run's end. */
const exited = (a: TestAgent) =>
  until(async () => {
    const s = await a.client.status();
    return s.run?.exited ? s.run : undefined;
  });

describe("agent, a leader that exits by itself and leaves a helper running", () => {
  it("a helper in a process group of its own (same session): Cancel leaves none of it", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    const pidFile = join(agent.workDir, "helper.pid");
    // bash's job control puts the background job in a process group of its own; the leader exits 0.
    const run = await c.run(runParams(["bash", "-c", `set -m; sleep 600 & echo $! > ${pidFile}; exit 0`]));
    started.push(run.pid);
    const helper = await pidFrom(pidFile);
    expect(readProc(helper)?.sid).toBe(run.pid);
    expect(await exited(agent)).toMatchObject({ exitCode: 0, hasExitCode: true, cancelled: false });
    const reply = await c.cancel({ leaseId: "lease-a", epoch: 1, graceMs: 300 });
    // Killed (at the run's end, or now), or else named: never reported clean while it runs.
    if (reply.leftoverPids.length === 0) expect(alive([helper])).toEqual([]);
    else expect(reply.leftoverPids).toContain(helper);
    expect(alive([helper])).toEqual([]);
    // The next attempt starts with nothing of the previous one alive.
    const next = await c.run(runParams(["sleep", "600"], { attempt: 2 }));
    started.push(next.pid);
    expect(next.started).toBe(true);
    expect(alive([helper])).toEqual([]);
  });

  it("a helper that ignores SIGTERM, the run released as its leader ends: ReleaseLease stops it", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    const pidFile = join(agent.workDir, "helper.pid");
    // The helper ignores SIGTERM and holds none of the run's pipes (its end is seen at once).
    const helperScript = `trap "" TERM; echo $$ > ${pidFile}; while :; do sleep 1; done`;
    const run = await c.run(
      runParams([
        "bash",
        "-c",
        `set -m; bash -c '${helperScript}' </dev/null >/dev/null 2>&1 & while [ ! -s ${pidFile} ]; do sleep 0.02; done; exit 0`,
      ]),
    );
    started.push(run.pid);
    const helper = await pidFrom(pidFile);
    const released = await c.releaseLease({ leaseId: "lease-a", epoch: 1, graceMs: 200 });
    expect(released.leftoverPids).toEqual([]);
    expect(alive([helper])).toEqual([]);
  });

  it("a helper that left group and session (setsid) is found by the run's result file and stopped", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    const pidFile = join(agent.workDir, "escaped.pid");
    const run = await c.run(
      runParams([
        "bash",
        "-c",
        `setsid bash -c 'echo $$ > ${pidFile}; exec sleep 600' & while [ ! -s ${pidFile} ]; do sleep 0.02; done; exit 0`,
      ]),
    );
    started.push(run.pid);
    const escaped = await pidFrom(pidFile);
    expect(readProc(escaped)).toMatchObject({ pgid: escaped, sid: escaped });
    await exited(agent);
    const released = await c.releaseLease({ leaseId: "lease-a", epoch: 1, graceMs: 300 });
    expect(released.leftoverPids).toEqual([]);
    expect(alive([escaped])).toEqual([]);
  });
});
