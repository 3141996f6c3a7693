// Fan-out of one Run to 256 hosts (and the Cancel of all of them), and the RSS of 256 agents in one
// process, against baselines in the same run: 256 bare spawns at once, and the RSS of the same
// process with no agent. Usage: npx tsx bench/agent-scale.ts [--rounds 5] [--hosts 256]
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { parseArgs } from "node:util";
import type { ClusterSlice } from "../core/cluster-spec.js";
import { type AgentClient, createAgentClient } from "../functions/clients/agent/client.js";
import { groupMembers } from "../infra/agent/process-group.js";
import { line } from "./agent-stats.js";

const { values } = parseArgs({
  options: { rounds: { type: "string", default: "5" }, hosts: { type: "string", default: "256" } },
});
const ROUNDS = Number(values.rounds);
const HOSTS = Number(values.hosts);
if (!Number.isInteger(HOSTS / 8) || (HOSTS & (HOSTS - 1)) !== 0)
  throw new Error("--hosts: a power of two ≥ 8");
const SPEC = `v4-${HOSTS * 8}`; // v4-N has N/8 hosts: one slice of HOSTS hosts
const TSX = join(import.meta.dirname, "../node_modules/.bin/tsx");

interface Host {
  proc: ChildProcess;
  lines: Interface;
  next(): Promise<string>;
}

function startHost(spec: string): Host {
  const proc = spawn(TSX, [join(import.meta.dirname, "agent-scale-host.ts"), spec], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  const queue: string[] = [];
  const waiting: Array<(l: string) => void> = [];
  lines.on("line", (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else queue.push(l);
  });
  return {
    proc,
    lines,
    next: () => {
      const l = queue.shift();
      return l !== undefined ? Promise.resolve(l) : new Promise((r) => waiting.push(r));
    },
  };
}

async function rssOf(host: Host): Promise<number> {
  host.proc.stdin?.write("rss\n");
  return (JSON.parse(await host.next()) as { rss: number }).rss / 2 ** 20;
}

async function stopHost(host: Host): Promise<void> {
  const exited = new Promise((r) => host.proc.once("exit", r));
  host.proc.stdin?.end();
  await exited;
}

async function bareFanOut(n: number): Promise<{ start: number; kill: number }> {
  const t0 = performance.now();
  const children = await Promise.all(
    Array.from({ length: n }, async () => {
      const c = spawn("sleep", ["60"], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
      await new Promise((r) => c.once("spawn", r));
      return c;
    }),
  );
  const start = performance.now() - t0;
  const t1 = performance.now();
  await Promise.all(
    children.map((c) => {
      const exited = new Promise((r) => c.once("exit", r));
      process.kill(-(c.pid ?? 0), "SIGTERM");
      return exited;
    }),
  );
  return { start, kill: performance.now() - t1 };
}

const rows: Record<string, number[]> = {};
const add = (k: string, v: number) => {
  rows[k] ??= [];
  rows[k].push(v);
};

for (let round = 0; round < ROUNDS; round++) {
  const baseline = startHost("");
  await baseline.next();
  add("baseline RSS: the host process, no agent", await rssOf(baseline));
  await stopHost(baseline);

  const host = startHost(SPEC);
  const ready = JSON.parse(await host.next()) as { slices: ClusterSlice[] };
  const slice = ready.slices[0];
  if (!slice || slice.hosts.length !== HOSTS) throw new Error(`expected ${HOSTS} hosts`);
  add(`RSS of ${HOSTS} idle agents (one process)`, await rssOf(host));
  const clients: AgentClient[] = slice.hosts.map((h) =>
    createAgentClient(h.agent ?? "", { token: "bench-token" }),
  );
  await Promise.all(clients.map((c) => c.health()));
  const leaseId = `bench-${round}`;
  await Promise.all(
    clients.map((c) => c.acquireLease({ leaseId, jobId: "bench", epoch: 1, ttlMs: 600_000 })),
  );

  const t0 = performance.now();
  const runs = await Promise.all(
    clients.map((c, i) =>
      c.run({
        ...{
          leaseId,
          epoch: 1,
          jobId: "bench",
          attempt: 1,
          sliceIndex: 0,
          sliceName: slice.name,
          hostIndex: i,
        },
        argv: ["sleep", "60"],
      }),
    ),
  );
  add(`fan-out: one Run to ${HOSTS} hosts, all started`, performance.now() - t0);
  if (runs.some((r) => !r.started)) throw new Error("a workload did not start");
  add(`RSS of ${HOSTS} agents, each running a workload`, await rssOf(host));
  const t1 = performance.now();
  await Promise.all(clients.map((c) => c.cancel({ leaseId, epoch: 1, graceMs: 5000 })));
  add(`fan-out: Cancel on ${HOSTS} hosts, all groups gone`, performance.now() - t1);
  if (runs.some((r) => groupMembers(r.pid).length > 0)) throw new Error("cancel left processes behind");
  await Promise.all(clients.map((c) => c.releaseLease({ leaseId, epoch: 1 })));
  for (const c of clients) c.close();
  await stopHost(host);

  const bare = await bareFanOut(HOSTS);
  add(`baseline: ${HOSTS} bare spawns at once, all started`, bare.start);
  add(`baseline: kill ${HOSTS} bare groups, all exited`, bare.kill);
}

console.log(
  `agent scale: ${ROUNDS} rounds, ${HOSTS} hosts (${SPEC}), agents in one child process, Node ${process.version}`,
);
for (const [k, v] of Object.entries(rows))
  console.log(line(k, v, k.startsWith("RSS") || k.startsWith("baseline RSS") ? "MiB" : "ms"));
