import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { main } from "../../../cli/main.js";
import { createAgentClient } from "../../../functions/clients/agent/client.js";
import { groupMembers } from "../../../infra/agent/process-group.js";

const GANGWAY = join(import.meta.dirname, "../../../bin/gangway.mjs");
let dir: string;
const started: ChildProcess[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gangway-cli-it-"));
});
afterEach(async () => {
  for (const p of started.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill("SIGKILL");
      await new Promise((r) => p.once("exit", r));
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Start `gangway <args>` and resolve with its first stdout line, parsed. */
async function startGangway(args: string[]): Promise<{ proc: ChildProcess; ready: Record<string, unknown> }> {
  const proc = spawn(process.execPath, [GANGWAY, ...args], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  started.push(proc);
  let stderr = "";
  proc.stderr?.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once("line", resolve);
    proc.once("exit", (code) => reject(new Error(`gangway ${args[0]} exited ${code}: ${stderr}`)));
  });
  return { proc, ready: JSON.parse(first) as Record<string, unknown> };
}

function runGangway(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [GANGWAY, ...args], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  started.push(proc);
  let stdout = "";
  let stderr = "";
  proc.stdout?.on("data", (b: Buffer) => {
    stdout += b.toString();
  });
  proc.stderr?.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  return new Promise((resolve) => proc.once("close", (code) => resolve({ code, stdout, stderr })));
}

/** Run a command in this process (for answers that start nothing). */
async function runInProcess(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, {
    cwd: dir,
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    signal: new AbortController().signal,
  });
  return { code, stdout, stderr };
}

const exited = (p: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (p.exitCode !== null) resolve(p.exitCode);
    else p.once("exit", (code) => resolve(code));
  });

interface ReadyCluster {
  ready: true;
  slices: Array<{
    name: string;
    type: string;
    hosts: Array<{ address: string; workerId: number; agent: string }>;
  }>;
  admin: string;
  tokenFile: string;
  stateFile: string;
}

describe("gangway cluster / preempt / agent", () => {
  it("cluster prints one ready line, preempt reaches it, SIGTERM leaves nothing behind", async () => {
    const stateFile = join(dir, "state.json");
    writeFileSync(join(dir, "token"), "cli-token\n");
    const { proc, ready } = await startGangway([
      ...["cluster", "--cluster", "v4-16x2", "--token-file", "token"],
      ...["--state-file", stateFile, "--work-dir", "work"],
    ]);
    const cluster = ready as unknown as ReadyCluster;
    expect(cluster.ready).toBe(true);
    expect(cluster.slices.map((s) => [s.name, s.type, s.hosts.map((h) => [h.address, h.workerId])])).toEqual([
      [
        "v4-16-0",
        "v4-16",
        [
          ["127.0.1.1", 0],
          ["127.0.1.2", 1],
        ],
      ],
      [
        "v4-16-1",
        "v4-16",
        [
          ["127.0.1.3", 0],
          ["127.0.1.4", 1],
        ],
      ],
    ]);
    expect(cluster.admin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(existsSync(stateFile)).toBe(true);

    // A workload on the slice that stays, to prove SIGTERM cleans it up.
    const head = cluster.slices[0]?.hosts[0]?.agent ?? "";
    const client = createAgentClient(head, { token: "cli-token" });
    await client.acquireLease({ leaseId: "l", jobId: "j", epoch: 1, ttlMs: 60_000 });
    const run = await client.run({
      ...{
        leaseId: "l",
        epoch: 1,
        jobId: "j",
        attempt: 1,
        sliceIndex: 0,
        sliceName: "v4-16-0",
        hostIndex: 0,
      },
      argv: ["sleep", "300"],
    });
    client.close();

    const preempted = await runGangway(["preempt", "v4-16-1", "--state-file", stateFile]);
    expect(preempted.code).toBe(0);
    const notices = (JSON.parse(preempted.stdout) as { notices: Array<{ sliceName: string }> }).notices;
    expect(notices.map((n) => n.sliceName)).toEqual(["v4-16-1", "v4-16-1"]);
    const unknown = await runInProcess([
      ...["preempt", "v4-16-1", "--admin", cluster.admin, "--token-file", join(dir, "token")],
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("no slice");
    const badToken = join(dir, "bad-token");
    writeFileSync(badToken, "wrong\n");
    const refused = await runInProcess([
      "preempt",
      "v4-16-0",
      "--admin",
      cluster.admin,
      "--token-file",
      badToken,
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("bearer token");

    proc.kill("SIGTERM");
    expect(await exited(proc)).toBe(0);
    expect(groupMembers(run.pid)).toEqual([]);
    expect(existsSync(stateFile)).toBe(false);
  });

  it("agent prints its address and serves with the token until SIGINT", async () => {
    writeFileSync(join(dir, "token"), "agent-token\n");
    const { proc, ready } = await startGangway([
      ...["agent", "--listen", "127.0.1.200:0", "--token-file", "token", "--no-preemption-probe"],
      ...["--work-dir", "work"],
    ]);
    expect(Object.keys(ready)).toEqual(["ready", "address"]);
    expect(ready.address).toMatch(/^127\.0\.1\.200:\d+$/);
    const client = createAgentClient(String(ready.address), { token: "agent-token" });
    expect((await client.health()).ok).toBe(true);
    client.close();
    proc.kill("SIGINT");
    expect(await exited(proc)).toBe(0);
  });

  it("preempt without a running cluster says so; agent and cluster refuse bad usage with exit code 2", async () => {
    const preempt = await runInProcess(["preempt", "v4-16-0", "--state-file", join(dir, "none.json")]);
    expect(preempt.code).toBe(1);
    expect(preempt.stderr).toContain("no running local cluster");
    expect((await runInProcess(["agent", "--listen", "127.0.0.1:0"])).code).toBe(2);
    expect((await runInProcess(["agent", "--listen", "nope", "--token-file", "x"])).code).toBe(2);
    const noToken = await runInProcess(["agent", "--listen", "127.0.0.1:0", "--token-file", "missing"]);
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain("--token-file");
    const badSpec = await runInProcess(["cluster", "--cluster", "v4-7x2"]);
    expect(badSpec.code).toBe(2);
    expect(badSpec.stderr).toContain("v4-7");
    expect((await runInProcess(["preempt"])).code).toBe(2);
  });
});
