import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DescribeExecutionCommand, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { afterAll, describe, expect, it } from "vitest";
import { createSfnClient } from "../../functions/clients/sfn.js";
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
});
