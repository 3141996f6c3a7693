import { spawn } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readProc } from "../../../infra/agent/process-group.js";
import { type AgentServerHandle, startAgentServer } from "../../../infra/agent/server.js";
import {
  alive,
  lease,
  liveGroup,
  pidsIn,
  publishedCancelledExits,
  runParams,
  startTestAgent,
  type TestAgent,
  TOKEN,
  until,
} from "./helpers.js";

let agent: TestAgent | undefined;
afterEach(async () => {
  await agent?.close();
  agent = undefined;
});

describe("agent cancel", () => {
  it("leaves no process of the group: children, a SIGTERM-ignoring child, one that left the group", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    const pidFile = join(agent.workDir, "pids");
    // The leader starts a plain child, a child that ignores SIGTERM, a child in its own process group
    // (set -m) and one in its own session (setsid); each writes its pid. The leader ignores SIGTERM.
    const script = [
      `sleep 300 & echo $! >> ${pidFile}`,
      `sh -c 'trap "" TERM; echo $$ >> ${pidFile}; while :; do sleep 1; done' &`,
      `(set -m; sleep 301 & echo $! >> ${pidFile}; wait) &`,
      `setsid sleep 302 & echo $! >> ${pidFile}`,
      `trap "" TERM`,
      `echo $$ >> ${pidFile}`,
      "wait",
    ].join("\n");
    const run = await c.run(runParams(["bash", "-c", script]));
    const pids = await until(() => (pidsIn(pidFile).length >= 5 ? pidsIn(pidFile) : undefined));
    expect(alive(pids)).toHaveLength(5);
    // Two of them really left the workload's process group (one even its session).
    const outside = pids.filter((pid) => readProc(pid)?.pgid !== run.pid);
    expect(outside).toHaveLength(2);
    expect(pids.filter((pid) => readProc(pid)?.sid !== run.pid)).toHaveLength(1);
    const reply = await c.cancel({ leaseId: "lease-a", epoch: 1, graceMs: 300 });
    // When Cancel returns, /proc already shows none of them.
    expect(reply.wasRunning).toBe(true);
    expect(reply.leftoverPids).toEqual([]);
    expect(alive(pids)).toEqual([]);
    expect(liveGroup(run.pid)).toEqual([]);
    expect(reply.status?.run).toMatchObject({ exited: true, cancelled: true, signal: "SIGKILL" });
    // The lease holder has the end in its reply: no event is published for it.
    expect(await publishedCancelledExits(agent)).toEqual([]);
  });

  it("waits for the rest of the group when the leader ends at once and a child ignores SIGTERM", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    const pidFile = join(agent.workDir, "pids");
    // The leader's exit wakes the wait early (the child holds none of its pipes, so the exit is
    // seen at once); the child that outlives it must still be waited for, and killed after the grace.
    const script = `sh -c 'trap "" TERM; echo $$ >> ${pidFile}; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 & echo $$ >> ${pidFile}; wait`;
    const run = await c.run(runParams(["sh", "-c", script]));
    const pids = await until(() => (pidsIn(pidFile).length >= 2 ? pidsIn(pidFile) : undefined));
    try {
      const reply = await c.cancel({ leaseId: "lease-a", epoch: 1, graceMs: 300 });
      expect(reply.leftoverPids).toEqual([]);
      expect(alive(pids)).toEqual([]);
      expect(liveGroup(run.pid)).toEqual([]);
    } finally {
      // Whatever the agent did, nothing of this test outlives it.
      for (const pid of alive(pids)) process.kill(pid, "SIGKILL");
    }
  });

  it("lets a workload that honours SIGTERM end within the grace period", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    const script = `process.on("SIGTERM", () => { require("node:fs").writeFileSync(process.env.GANGWAY_RESULT_FILE, '"clean"'); process.exit(0); }); setInterval(() => {}, 1000); console.log("ready");`;
    await c.run(runParams([process.execPath, "-e", script]));
    await until(async () => ((await c.readOutput()).stdout.toString().includes("ready") ? true : undefined));
    const reply = await c.cancel({ leaseId: "lease-a", epoch: 1, graceMs: 10_000 });
    expect(reply.status?.run).toMatchObject({
      exitCode: 0,
      hasExitCode: true,
      cancelled: true,
      resultJson: '"clean"',
    });
  });

  it("kills at once when asked for no grace, rather than giving the agent's default", async () => {
    // The agent's default grace (5 s) would let the workload end cleanly, 1 s after SIGTERM.
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    const script = `trap 'sleep 1; exit 0' TERM; echo ready; while :; do sleep 1; done`;
    await c.run(runParams(["sh", "-c", script]));
    await until(async () => ((await c.readOutput()).stdout.toString().includes("ready") ? true : undefined));
    const reply = await c.cancel({ leaseId: "lease-a", epoch: 1, graceMs: 0 });
    expect(reply.status?.run).toMatchObject({ cancelled: true, signal: "SIGKILL" });
  });

  it("cancelling when nothing runs is harmless", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    const reply = await c.cancel({ leaseId: "lease-a", epoch: 1 });
    expect(reply).toMatchObject({ wasRunning: false, leftoverPids: [] });
  });

  it("an agent starting on a work dir kills what a crashed predecessor left running there", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gangway-leftovers-"));
    const spawnWith = (resultFile: string) => {
      const child = spawn("sh", ["-c", "sleep 300 & wait"], {
        detached: true,
        stdio: "ignore",
        env: { PATH: process.env.PATH, GANGWAY_RESULT_FILE: resultFile },
      });
      child.unref();
      return child.pid ?? 0;
    };
    const orphan = spawnWith(join(dir, "runs/job/attempt-1/slice-0-host-0/result.json"));
    const foreign = spawnWith(join(`${dir}-other`, "runs/job/attempt-1/slice-0-host-0/result.json"));
    try {
      await until(() =>
        liveGroup(orphan).length === 2 && liveGroup(foreign).length === 2 ? true : undefined,
      );
      const a = await startTestAgent({ workDir: dir, killLeftovers: true });
      // It serves only once they are gone.
      expect(liveGroup(orphan)).toEqual([]);
      await a.close();
      expect(liveGroup(foreign)).toHaveLength(2);
    } finally {
      for (const pid of liveGroup(foreign)) process.kill(pid, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a second agent on a work dir another agent holds refuses to start, and kills nothing", async () => {
    agent = await startTestAgent({ killLeftovers: true });
    await agent.client.acquireLease(lease());
    const run = await agent.client.run(runParams(["sh", "-c", "sleep 300 & wait"]));
    await until(() => (liveGroup(run.pid).length === 2 ? true : undefined));
    const second = (options: { workDir: string }) =>
      startAgentServer({
        listen: "127.0.1.1:0",
        token: TOKEN,
        killLeftovers: true,
        log: () => {},
        ...options,
      });
    const outcome = await second({ workDir: agent.workDir }).catch((e: unknown) => e);
    // Should it have started (the bug), it must not outlive the test.
    if (typeof (outcome as Partial<AgentServerHandle>).close === "function")
      await (outcome as AgentServerHandle).close();
    const error = outcome instanceof Error ? outcome : undefined;
    expect(error?.name).toBe("WorkDirInUse");
    expect(error).toMatchObject({ details: { pid: process.pid } });
    expect(error?.message).toContain(realpathSync(agent.workDir));
    expect(error?.message).toContain(agent.server.address);
    expect(liveGroup(run.pid)).toHaveLength(2);
    // Once the holder is gone (closed, or killed as a VM dies), the dir may be taken again.
    const dir = mkdtempSync(join(tmpdir(), "gangway-workdir-claim-"));
    try {
      const a = await second({ workDir: dir });
      await a.kill();
      const b = await second({ workDir: dir });
      await b.close();
      await (await second({ workDir: dir })).close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("closing the agent leaves no workload behind", async () => {
    const a = await startTestAgent();
    await a.client.acquireLease(lease());
    const run = await a.client.run(runParams(["sh", "-c", "sleep 300 & sleep 300"]));
    await a.close();
    expect(liveGroup(run.pid)).toEqual([]);
  });
});
