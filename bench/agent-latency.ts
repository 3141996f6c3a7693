// Run → process started and Cancel → group gone on one real agent over gRPC, against a bare
// child_process.spawn / kill baseline measured in the same run.
// Usage: npx tsx bench/agent-latency.ts [--rounds 5] [--runs 100]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createAgentClient } from "../functions/clients/agent/client.js";
import { groupMembers } from "../infra/agent/process-group.js";
import { startAgentServer } from "../infra/agent/server.js";
import { line, summarize } from "./agent-stats.js";

const { values } = parseArgs({
  options: { rounds: { type: "string", default: "5" }, runs: { type: "string", default: "100" } },
});
const ROUNDS = Number(values.rounds);
const RUNS = Number(values.runs);
const TOKEN = "bench-token";

async function bareSpawnRound(): Promise<{ start: number[]; kill: number[] }> {
  const start: number[] = [];
  const kill: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const child = spawn("sleep", ["60"], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    await new Promise((r) => child.once("spawn", r));
    start.push(performance.now() - t0);
    const t1 = performance.now();
    const exited = new Promise((r) => child.once("exit", r));
    process.kill(-(child.pid ?? 0), "SIGTERM");
    await exited;
    kill.push(performance.now() - t1);
  }
  return { start, kill };
}

async function agentRound(address: string): Promise<{ start: number[]; cancel: number[] }> {
  const c = createAgentClient(address, { token: TOKEN });
  await c.health(); // connect first: a control plane keeps its channels open
  const start: number[] = [];
  const cancel: number[] = [];
  await c.acquireLease({ leaseId: "bench", jobId: "bench", epoch: 1, ttlMs: 600_000 });
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = await c.run({
      ...{
        leaseId: "bench",
        epoch: 1,
        jobId: "bench",
        attempt: i + 1,
        sliceIndex: 0,
        sliceName: "s",
        hostIndex: 0,
      },
      argv: ["sleep", "60"],
    });
    start.push(performance.now() - t0);
    if (!r.started) throw new Error("workload did not start");
    const t1 = performance.now();
    await c.cancel({ leaseId: "bench", epoch: 1, graceMs: 5000 });
    cancel.push(performance.now() - t1);
    if (groupMembers(r.pid).length > 0) throw new Error("cancel left processes behind");
  }
  await c.releaseLease({ leaseId: "bench", epoch: 1 });
  c.close();
  return { start, cancel };
}

const dir = mkdtempSync(join(tmpdir(), "gangway-bench-"));
const agent = await startAgentServer({
  listen: "127.0.1.1:0",
  token: TOKEN,
  workDir: dir,
  lockfilePath: join(dir, "lock"),
  log: () => {},
});
const rows: Record<string, number[]> = {};
const add = (k: string, v: number) => {
  rows[k] ??= [];
  rows[k].push(v);
};
for (let round = 0; round < ROUNDS; round++) {
  const bare = await bareSpawnRound();
  const a = await agentRound(agent.address);
  const bs = summarize(bare.start);
  const bk = summarize(bare.kill);
  const as = summarize(a.start);
  const ac = summarize(a.cancel);
  add("baseline spawn → 'spawn' event  p50", bs.p50);
  add("baseline spawn → 'spawn' event  p99", bs.p99);
  add("agent Run → process started      p50", as.p50);
  add("agent Run → process started      p99", as.p99);
  add("baseline kill group → exit       p50", bk.p50);
  add("baseline kill group → exit       p99", bk.p99);
  add("agent Cancel → group gone (/proc) p50", ac.p50);
  add("agent Cancel → group gone (/proc) p99", ac.p99);
}
await agent.close();
rmSync(dir, { recursive: true, force: true });
console.log(`agent latency: ${ROUNDS} rounds × ${RUNS} runs, workload \`sleep 60\`, Node ${process.version}`);
for (const [k, v] of Object.entries(rows)) console.log(line(k, v));
