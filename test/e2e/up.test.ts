import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DescribeExecutionCommand, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { afterAll, describe, expect, it } from "vitest";
import { createSfnClient } from "../../functions/clients/sfn.js";
import { startLocalStack } from "../../infra/local/stack.js";
import { behaveJob, processesOfJob, REPO } from "./harness.js";
import { killStartedGangways, startGangway } from "./processes.js";

// `gangway up` as users run it: a real process that prints one ready line, survives `kill -9`
// of itself mid-job (started again on the same state directory, the job completes), and leaves
// no process behind on Ctrl-C.

interface Ready {
  ready: true;
  api: string;
  sfnEndpoint: string;
  pubsubEmulatorHost: string;
  stateMachineArn: string;
  projectId: string;
}

afterAll(killStartedGangways);

async function up(stateDir: string): Promise<{ child: ChildProcess; ready: Ready }> {
  const { child, line } = await startGangway([
    "up",
    "--cluster",
    "v4-8x1",
    "--state-dir",
    stateDir,
    "--provisioning-delay",
    "200",
  ]);
  return { child, ready: line as unknown as Ready };
}

async function workloadsUnder(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const e of await readdir("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const env = await readFile(`/proc/${e}/environ`, "latin1").catch(() => "");
    if (env.includes(`GANGWAY_RESULT_FILE=${dir}`)) pids.push(Number(e));
  }
  return pids;
}

/** Live (not zombie) child processes of this process. */
async function childProcesses(): Promise<number[]> {
  const pids: number[] = [];
  for (const e of await readdir("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const stat = await readFile(`/proc/${e}/stat`, "latin1").catch(() => "");
    // After the command name (in parentheses, may hold spaces): state, then parent pid.
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(ppid) === process.pid && state !== "Z") pids.push(Number(e));
  }
  return pids;
}

/** The exit code of `child` once it is gone; SIGKILLed (resolving null) if not gone after `ms`. */
function exitOf(child: ChildProcess, ms = 90_000): Promise<number | null> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done(child.exitCode);
    const timer = setTimeout(() => child.kill("SIGKILL"), ms);
    child.once("exit", (code) => {
      clearTimeout(timer);
      done(code);
    });
  });
}

/** SIGKILL the process groups of what is left of job `jobId` (a failed test's leftovers). */
async function killJob(jobId: string): Promise<void> {
  for (const pid of await processesOfJob(jobId)) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("gangway up", () => {
  it("prints its ready line, survives kill -9 mid-job, and leaves nothing behind on Ctrl-C", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "gangway-up-"));
    try {
      const first = await up(stateDir);
      expect(first.ready).toMatchObject({ ready: true, projectId: "gangway-local" });
      expect(first.ready.stateMachineArn).toMatch(/:stateMachine:gangway-multislice$/);
      expect(first.ready.pubsubEmulatorHost).toMatch(/^127\.0\.0\.1:\d+$/);

      const jobId = `up-${Date.now()}`;
      const sfn1 = createSfnClient({ endpoint: first.ready.sfnEndpoint });
      const { executionArn } = await sfn1.send(
        new StartExecutionCommand({
          stateMachineArn: first.ready.stateMachineArn,
          name: jobId,
          input: JSON.stringify(
            behaveJob("up", { kind: "tpu", type: "v4-8", slices: 1 }, ["--sleep", "3000"]),
          ),
        }),
      );
      sfn1.destroy();
      await until("the workload to start", async () =>
        (await processesOfJob(jobId)).length > 0 ? true : undefined,
      );

      first.child.kill("SIGKILL");
      await new Promise((r) => first.child.once("exit", r));

      const second = await up(stateDir);
      const sfn2 = createSfnClient({ endpoint: second.ready.sfnEndpoint });
      const done = await until("the job to end", async () => {
        const d = await sfn2.send(new DescribeExecutionCommand({ executionArn }));
        return d.status === "RUNNING" ? undefined : d;
      });
      sfn2.destroy();
      expect(done.status, `${done.error}: ${done.cause?.slice(0, 2000)}`).toBe("SUCCEEDED");
      const status = JSON.parse(done.output ?? "{}");
      expect(status.status).toBe("SUCCEEDED");
      expect(status.counters.preemptions).toBeGreaterThanOrEqual(1);
      expect(status.result).toEqual([{ slice: 0, host: 0, worker: 0, attempt: status.counters.attempts }]);

      second.child.kill("SIGINT");
      const code = await new Promise((r) => second.child.once("exit", (c) => r(c)));
      expect(code).toBe(0);
      expect(await processesOfJob(jobId)).toEqual([]);
      expect(await workloadsUnder(stateDir)).toEqual([]);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it("is reached by gangway preempt and the API commands through its state directory", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "gangway-up-"));
    const cli = (...args: string[]) =>
      new Promise<{ code: number | null; stdout: string }>((resolve) => {
        const child = spawn(process.execPath, ["bin/gangway.mjs", ...args], {
          cwd: REPO,
          stdio: ["ignore", "pipe", "inherit"],
        });
        let stdout = "";
        child.stdout.on("data", (d) => {
          stdout += d;
        });
        child.on("exit", (code) => resolve({ code, stdout }));
      });
    try {
      const { child, ready } = await up(stateDir);
      const sfn = createSfnClient({ endpoint: ready.sfnEndpoint });
      const jobId = `pre-${Date.now()}`;
      const { executionArn } = await sfn.send(
        new StartExecutionCommand({
          stateMachineArn: ready.stateMachineArn,
          name: jobId,
          input: JSON.stringify(
            behaveJob("pre", { kind: "tpu", type: "v4-8", slices: 1 }, [
              // Attempt 1 lasts until the preemption, however slow the CLI is to start.
              "--first-sleep",
              "120000",
              "--sleep",
              "200",
            ]),
          ),
        }),
      );
      await until("the workload to start", async () =>
        (await processesOfJob(jobId)).length > 0 ? true : undefined,
      );
      const preempt = await cli("preempt", "v4-8-0", "--state-file", join(stateDir, "cluster.json"));
      expect(preempt.code).toBe(0);
      expect(JSON.parse(preempt.stdout)).toMatchObject({ slice: "v4-8-0" });
      const done = await until("the job to end", async () => {
        const d = await sfn.send(new DescribeExecutionCommand({ executionArn }));
        return d.status === "RUNNING" ? undefined : d;
      });
      sfn.destroy();
      expect(JSON.parse(done.output ?? "{}").counters).toMatchObject({ preemptions: 1 });
      const status = await cli("status", jobId, "--state-dir", stateDir, "--json");
      expect(status.code).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({ jobId, status: "SUCCEEDED" });
      child.kill("SIGINT");
      await new Promise((r) => child.once("exit", r));
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it("serves on when the shared state file cannot be written, saying how to reach its cluster instead", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "gangway-up-"));
    // The shared state file (\$TMPDIR/gangway-local-cluster.json) cannot be written: a directory is there.
    const fakeTmp = await mkdtemp(join(tmpdir(), "gangway-up-tmp-"));
    await mkdir(join(fakeTmp, "gangway-local-cluster.json", "in-the-way"), { recursive: true });
    try {
      const { child, line, stderr } = await startGangway(
        ["up", "--cluster", "v4-8x1", "--state-dir", stateDir, "--provisioning-delay-ms", "200"],
        { TMPDIR: fakeTmp },
      );
      expect(line).toMatchObject({ ready: true });
      await until("the warning", async () => (stderr().includes("warning") ? true : undefined));
      expect(stderr()).toMatch(
        /could not write .*gangway-local-cluster\.json.*--state-file .*cluster\.json/s,
      );
      // Nothing half-written is left in the shared directory.
      expect((await readdir(fakeTmp)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
      child.kill("SIGINT");
      expect(await exitOf(child)).toBe(0);
      expect(await workloadsUnder(stateDir)).toEqual([]);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
      await rm(fakeTmp, { recursive: true, force: true });
    }
  });

  it("refuses a --port in use with a clear error, leaving nothing running", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "gangway-up-"));
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
    const port = (holder.address() as { port: number }).port;
    const before = new Set(await childProcesses());
    try {
      const err = await startLocalStack({ cluster: "v4-8x1", stateDir, port, workloadCwd: REPO }).catch(
        (e: unknown) => e,
      );
      expect(err).toMatchObject({
        name: "ApiListenFailed",
        code: "EADDRINUSE",
        message: expect.stringContaining(`port ${port} is already in use (EADDRINUSE)`),
      });
      // What the stack started (its hosts' forked shells among them) is gone.
      expect((await childProcesses()).filter((pid) => !before.has(pid))).toEqual([]);
    } finally {
      await new Promise((r) => holder.close(r));
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});

describe("a state directory", () => {
  it("is held by one stack: a second is refused, leaving the first one's workloads and journals alone", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "gangway-up-"));
    const first = await startLocalStack({ cluster: "v4-8x1", stateDir, workloadCwd: REPO });
    const sfn = createSfnClient({ endpoint: first.sfnEndpoint });
    const jobId = `held-${Date.now()}`;
    try {
      await sfn.send(
        new StartExecutionCommand({
          stateMachineArn: first.stateMachineArn,
          name: jobId,
          input: JSON.stringify(
            behaveJob("held", { kind: "tpu", type: "v4-8", slices: 1 }, ["--first-sleep", "120000"]),
          ),
        }),
      );
      const running = await until("the workload to start", async () => {
        const pids = await processesOfJob(jobId);
        return pids.length > 0 ? pids : undefined;
      });

      const err = await startLocalStack({ cluster: "v4-8x1", stateDir, workloadCwd: REPO }).catch(
        (e: unknown) => e,
      );
      expect(err).toMatchObject({
        name: "StateDirInUse",
        message: expect.stringContaining(`is in use by another gangway stack (pid ${process.pid})`),
      });
      // Without the lock the second stack took them for a crashed stack's leftovers.
      for (const pid of running) expect(() => process.kill(pid, 0)).not.toThrow();
      // The engine's journal is held on its own too (`gangway sfn-local --state-dir <dir>/sfn`).
      const { createSfnEngine } = await import("../../infra/local/sfn/engine.js");
      await expect(createSfnEngine({ stateDir: join(stateDir, "sfn") })).rejects.toMatchObject({
        name: "StateDirInUse",
        message: expect.stringContaining("in use by another step functions engine"),
      });
    } finally {
      sfn.destroy();
      await first.close();
      await killJob(jobId);
    }
    // Once the first stack is gone, the dir is free again, and "ready" went with it.
    await expect(readFile(join(stateDir, "ready.json"), "utf8")).rejects.toMatchObject({ code: "ENOENT" });
    const again = await startLocalStack({ cluster: "v4-8x1", stateDir, workloadCwd: REPO });
    await again.close();
    await rm(stateDir, { recursive: true, force: true });
  });
});

describe("gangway run interrupted", () => {
  it("leaves no workload behind on Ctrl-C pressed twice while it stops", async () => {
    const dir = await mkdtemp(join(tmpdir(), "gangway-run-int-"));
    let jobId = "";
    try {
      const file = join(dir, "stubborn.json");
      // A workload that ignores SIGTERM: stopping it takes the agent's whole grace period.
      await writeFile(
        file,
        JSON.stringify({
          name: "stubborn",
          accelerator: { kind: "tpu", type: "v4-8", slices: 1 },
          workload: { command: ["sh", "-c", "trap '' TERM; sleep 300"] },
        }),
      );
      const child = spawn(process.execPath, ["bin/gangway.mjs", "run", file, "--cluster", "v4-8x1"], {
        cwd: REPO,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      child.stdout.on("data", (d) => {
        stdout += d;
      });
      child.stderr.on("data", () => {});
      const exited = exitOf(child);
      jobId = await until("the job's id", async () => /job (\S+) submitted/.exec(stdout)?.[1]);
      await until("the workload to start", async () =>
        (await processesOfJob(jobId)).length > 0 ? true : undefined,
      );
      child.kill("SIGINT");
      await new Promise((r) => setTimeout(r, 200));
      child.kill("SIGINT");
      expect(await exited).toBe(1);
      expect(await processesOfJob(jobId)).toEqual([]);
    } finally {
      if (jobId) await killJob(jobId);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
