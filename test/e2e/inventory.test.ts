import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { DescribeExecutionCommand, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { PubSub } from "@google-cloud/pubsub";
import { afterAll, describe, expect, it } from "vitest";
import { PREEMPTION_NOTICES_TOPIC } from "../../core/host-event.js";
import { createSfnClient } from "../../functions/clients/sfn.js";
import { behaveJob, processesOfJob, REPO } from "./harness.js";

// `gangway up --inventory`: the control plane in one process, the hosts' agents in another (as
// `gangway agent`s on real machines would be), their events reaching it through Pub/Sub only.

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

/** Start `gangway <args>` and resolve with its first stdout line, parsed. */
function startGangway(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ child: ChildProcess; line: Record<string, unknown> }> {
  const child = spawn(process.execPath, ["bin/gangway.mjs", ...args], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line in time; stderr: ${stderr}`)), 30_000);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once("line", (line) => {
      clearTimeout(timer);
      try {
        resolve({ child, line: JSON.parse(line) as Record<string, unknown> });
      } catch (e) {
        reject(e);
      }
    });
    child.once("exit", (code) => reject(new Error(`gangway ${args[0]} exited ${code}: ${stderr}`)));
  });
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

const stop = (child: ChildProcess) =>
  new Promise<void>((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once("exit", () => done());
    child.kill("SIGINT");
  });

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
      await writeFile(join(dir, "inventory.json"), JSON.stringify({ slices }));

      const { child: stack, line } = await startGangway([
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
      expect(ready.pubsubEmulatorHost).toBe(`127.0.0.1:${pubsubPort}`);
      const sfn = createSfnClient({ endpoint: ready.sfnEndpoint });
      const pubsub = new PubSub({ projectId: ready.projectId, apiEndpoint: ready.pubsubEmulatorHost });
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
        let done: { status?: string; output?: string } | undefined;
        for (let i = 0; i < 1200 && (done === undefined || done.status === "RUNNING"); i++) {
          await new Promise((r) => setTimeout(r, 50));
          done = await sfn.send(new DescribeExecutionCommand({ executionArn }));
        }
        expect(done?.status).toBe("SUCCEEDED");
        const output = JSON.parse(done?.output ?? "{}");
        expect(output).toMatchObject({ status: "SUCCEEDED", counters: { preemptions: 1 } });
        // Retried on the same machines: an inventory's hosts are not deleted when preempted.
        expect(output.result).toHaveLength(2);
        expect(await processesOfJob(jobId)).toEqual([]);
      } finally {
        sfn.destroy();
        await pubsub.close();
        await stop(stack);
        await stop(cluster);
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
