import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StartExecutionCommand } from "@aws-sdk/client-sfn";
import { PubSub } from "@google-cloud/pubsub";
import { afterAll, describe, expect, it } from "vitest";
import { PREEMPTION_NOTICES_TOPIC } from "../../core/host-event.js";
import { createSfnClient } from "../../functions/clients/sfn.js";
import { behaveJob, processesOfJob, REPO } from "./harness.js";
import { killStartedGangways, startGangway, stopGangway, untilEnded } from "./processes.js";

// `gangway up --inventory`: the control plane in one process, the hosts' agents in another (as
// `gangway agent`s on real machines would be), their events reaching it through Pub/Sub only.

afterAll(killStartedGangways);

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

/** `gangway up` over an inventory of `slices`, its agents' events coming to `pubsubPort`. */
async function upOnInventory(dir: string, slices: unknown[], tokenFile: string, pubsubPort: number) {
  await writeFile(join(dir, "inventory.json"), JSON.stringify({ slices }));
  const { child, line } = await startGangway([
    "up",
    "--inventory",
    join(dir, "inventory.json"),
    "--agent-token-file",
    tokenFile,
    "--pubsub-port",
    String(pubsubPort),
    "--state-dir",
    join(dir, "state"),
  ]);
  const ready = line as {
    sfnEndpoint: string;
    stateMachineArn: string;
    pubsubEmulatorHost: string;
    projectId: string;
  };
  return { stack: child, ready, sfn: createSfnClient({ endpoint: ready.sfnEndpoint }) };
}

describe("gangway up --inventory", () => {
  it("runs a job on another process's agents and retries it through a notice", async () => {
    const dir = await mkdtemp(join(tmpdir(), "gangway-inventory-"));
    try {
      const pubsubPort = await freePort();
      const tokenFile = join(dir, "token");
      await writeFile(tokenFile, "inventory-test-token-0123456789\n", { mode: 0o600 });
      const { child: cluster, line: clusterReady } = await startGangway(
        [
          "cluster",
          "--cluster",
          "v4-8x2",
          "--token-file",
          tokenFile,
          "--work-dir",
          join(dir, "hosts"),
          "--state-file",
          join(dir, "cluster.json"),
          "--pubsub-project",
          "gangway-local",
        ],
        { PUBSUB_EMULATOR_HOST: `127.0.0.1:${pubsubPort}` },
      );
      const slices = (clusterReady as { slices: Array<Record<string, unknown>> }).slices.map((s) => ({
        name: s.name,
        kind: s.kind,
        type: s.type,
        hosts: s.hosts,
      }));
      const { stack, ready, sfn } = await upOnInventory(dir, slices, tokenFile, pubsubPort);
      const pubsub = new PubSub({
        projectId: ready.projectId,
        apiEndpoint: ready.pubsubEmulatorHost,
        emulatorMode: true,
      });
      try {
        const jobId = `inventory-${Date.now()}`;
        const { executionArn } = await sfn.send(
          new StartExecutionCommand({
            stateMachineArn: ready.stateMachineArn,
            name: jobId,
            input: JSON.stringify(
              behaveJob("inventory", { kind: "tpu", type: "v4-8", slices: 2 }, [
                "--first-sleep",
                "120000",
                "--sleep",
                "200",
              ]),
            ),
          }),
        );
        for (let i = 0; (await processesOfJob(jobId)).length < 2; i++) {
          if (i > 600) throw new Error("the workloads did not start on the inventory's hosts");
          await new Promise((r) => setTimeout(r, 50));
        }
        await pubsub.topic(PREEMPTION_NOTICES_TOPIC).publishMessage({ json: { slice: slices[1]?.name } });
        const done = await untilEnded(sfn, executionArn, 60_000);
        expect(done.status).toBe("SUCCEEDED");
        const output = JSON.parse(done.output ?? "{}");
        expect(output).toMatchObject({ status: "SUCCEEDED", counters: { preemptions: 1 } });
        // Retried on the same machines: an inventory's hosts are not deleted when preempted.
        expect(output.result).toHaveLength(2);
        expect(await processesOfJob(jobId)).toEqual([]);
      } finally {
        sfn.destroy();
        await pubsub.close();
        expect(await stopGangway(stack)).toBe(0);
        expect(await stopGangway(cluster)).toBe(0);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("finds a host whose agent process is killed with SIGKILL mid-run, and retries elsewhere", async () => {
    const dir = await mkdtemp(join(tmpdir(), "gangway-agentkill-"));
    try {
      const pubsubPort = await freePort();
      const tokenFile = join(dir, "token");
      await writeFile(tokenFile, "agentkill-test-token-0123456789\n", { mode: 0o600 });
      // Two machines, one `gangway agent` process each, as on real hosts.
      const agents: Array<{ child: ChildProcess; address: string; agent: string; workDir: string }> = [];
      for (const address of ["127.0.1.231", "127.0.1.232"]) {
        const workDir = join(dir, address);
        const { child, line } = await startGangway(
          [
            "agent",
            "--listen",
            `${address}:0`,
            "--token-file",
            tokenFile,
            "--work-dir",
            workDir,
            "--no-preemption-probe",
            "--pubsub-project",
            "gangway-local",
          ],
          { PUBSUB_EMULATOR_HOST: `127.0.0.1:${pubsubPort}` },
        );
        agents.push({ child, address, agent: String(line.address), workDir });
      }
      const slices = agents.map((a, i) => ({
        name: `pod-${i}`,
        type: "v4-8",
        hosts: [{ address: a.address, workerId: 0, agent: a.agent }],
      }));
      const { stack, ready, sfn } = await upOnInventory(dir, slices, tokenFile, pubsubPort);
      try {
        const jobId = `agentkill-${Date.now()}`;
        const { executionArn } = await sfn.send(
          new StartExecutionCommand({
            stateMachineArn: ready.stateMachineArn,
            name: jobId,
            input: JSON.stringify(
              behaveJob(
                "agentkill",
                { kind: "tpu", type: "v4-8", slices: 1 },
                ["--first-sleep", "120000", "--sleep", "200"],
                { timeouts: { heartbeatSeconds: 4 } },
              ),
            ),
          }),
        );
        let workload: number[] = [];
        for (let i = 0; workload.length === 0; i++) {
          if (i > 600) throw new Error("the workload did not start");
          await new Promise((r) => setTimeout(r, 50));
          workload = await processesOfJob(jobId);
        }
        // The machine dies: its agent with SIGKILL (nothing said, nothing published), its workload too.
        const environ = await readFile(`/proc/${workload[0]}/environ`, "latin1");
        const victim = agents.find((a) => environ.includes(`GANGWAY_RESULT_FILE=${a.workDir}`));
        expect(victim).toBeDefined();
        victim?.child.kill("SIGKILL");
        for (const pid of workload) process.kill(pid, "SIGKILL");
        const done = await untilEnded(sfn, executionArn, 90_000);
        expect(done.status).toBe("SUCCEEDED");
        expect(JSON.parse(done.output ?? "{}")).toMatchObject({ counters: { preemptions: 1, failures: 0 } });
        expect(await processesOfJob(jobId)).toEqual([]);
      } finally {
        sfn.destroy();
        await stopGangway(stack);
        for (const a of agents) await stopGangway(a.child);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses a token file without --inventory, and an unreadable inventory", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ["bin/gangway.mjs", "up", ...args], {
          cwd: REPO,
          stdio: ["ignore", "ignore", "pipe"],
        });
        let stderr = "";
        child.stderr.on("data", (d) => {
          stderr += d;
        });
        child.on("exit", (code) => resolve({ code, stderr }));
      });
    const lone = await run(["--agent-token-file", "/nonexistent"]);
    expect(lone.code).toBe(2);
    expect(lone.stderr).toContain("--agent-token-file and --agent-ca go with --inventory");
    const missing = await run(["--inventory", "/nonexistent.json", "--agent-token-file", "/nonexistent"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--agent-token-file: cannot read /nonexistent");
  });
});
