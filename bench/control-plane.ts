/**
 * Control-plane benchmark (issue: the control plane): for 1×4, 4×4, 16×4 and 64×4 hosts,
 * - launch: StartExecution → every host's workload started, beside a bare fan-out baseline in
 *   the same run (the same agents, direct lease + Run calls, no state machine);
 * - recovery: a preemption notice published → every old process gone → every new process
 *   started (spare slices are up, so no provisioning delay is included). The notice comes
 *   `--settle-ms` after the launch (default 10 s), mid-run as preemptions do, once the agents
 *   have forked their next shells (infra/agent/prefork.ts);
 * - control-plane RSS with 20 concurrent jobs;
 * - the machine's floor: the same N workloads started from a bare shell loop (no agent, no
 *   control plane) — every simulated host shares this machine's cores, so no launch or recovery
 *   of N hosts can beat it here.
 * - where the CPU went during each recovery: the machine, this process's JS thread and its other
 *   threads, every other process (/proc/stat and /proc/self/task, 10 ms ticks).
 * Prints median and spread (p10–p90) over several runs.
 *
 *   npm run bench:control-plane -- [--sizes 1,4,16,64] [--runs 5] [--settle-ms 10000]
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, watch } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  type SFNClient,
  StartExecutionCommand,
} from "@aws-sdk/client-sfn";
import { PubSub } from "@google-cloud/pubsub";
import { PREEMPTION_NOTICES_TOPIC } from "../core/host-event.js";
import { createAgentClient } from "../functions/clients/agent/client.js";
import { createSfnClient } from "../functions/clients/sfn.js";
import { mapLimit } from "../functions/deps.js";
import { startLocalStack } from "../infra/local/stack.js";
import { type CpuUse, cpuUse, sampleCpu } from "./cpu-use.js";

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "1,4,16,64" },
    runs: { type: "string", default: "5" },
    "settle-ms": { type: "string", default: "10000" },
  },
});
const settleMs = Number(values["settle-ms"]);
const sizes = String(values.sizes).split(",").map(Number);
const runs = Number(values.runs);

// The workload: mark that it started, then wait; attempt ≥ 2 ends 3 s after it starts, once every
// host has started (the first hosts' ends — events, pushes, ingest — would otherwise be handled
// in the middle of the last hosts' launches, which no training job's end is). The mark is a file
// made by the shell itself: its mtime says when (to the kernel's clock tick), with no process
// forked to read the clock — `date` would double the processes to start.
const SCRIPT =
  ': > "$MARKS/$GANGWAY_ATTEMPT-$GANGWAY_WORKER_INDEX"; if [ "$GANGWAY_ATTEMPT" -ge "$STOP_AT" ]; then sleep 3; exit 0; fi; exec sleep 600';

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))] ?? Number.NaN;
  return { median: q(0.5), p10: q(0.1), p90: q(0.9) };
};
const fmt = (xs: number[]) => {
  const { median, p10, p90 } = stats(xs);
  return `${median.toFixed(0)} ms (p10 ${p10.toFixed(0)}, p90 ${p90.toFixed(0)})`;
};

/**
 * Wait until `count` workloads of `attempt` have made their marks, then read when each was made
 * (mtime). The harness shares the stack's process, JS thread and cores, so it watches the
 * directory (inotify: one event per mark) rather than listing it every few milliseconds; it
 * lists it once the events name `count` marks, and every 100 ms in case one was missed. When it
 * notices does not matter: the figures come from the marks' mtimes.
 */
async function awaitMarks(what: string, dir: string, attempt: number, count: number): Promise<number[]> {
  const prefix = `${attempt}-`;
  const ac = new AbortController();
  const named = new Set<string>();
  let wake: (() => void) | undefined;
  const watching = (async () => {
    try {
      for await (const { filename } of watch(dir, { signal: ac.signal })) {
        if (filename?.startsWith(prefix)) named.add(filename);
        if (named.size >= count) wake?.();
      }
    } catch (e) {
      if ((e as Error).name !== "AbortError") throw e;
    }
  })();
  const deadline = Date.now() + 120_000;
  try {
    for (;;) {
      const found = (await readdir(dir)).filter((f) => f.startsWith(prefix));
      if (found.length === count) {
        return await Promise.all(
          found.map(async (f) => Number((await stat(join(dir, f), { bigint: true })).mtimeNs / 1_000_000n)),
        );
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      for (const f of found) named.add(f);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, 100);
        wake = () => {
          clearTimeout(timer);
          r();
        };
        if (named.size >= count && named.size !== found.length) wake();
      });
    }
  } finally {
    ac.abort();
    await watching;
  }
}

/**
 * Resolve when none of `pids` is alive, looking every 2 ms. Each look signals (0) the pids in
 * order only up to the first one alive, so the harness makes about one system call per look
 * rather than one per pid.
 */
async function allGone(pids: readonly number[]): Promise<void> {
  let next = 0;
  await waitFor("old processes gone", async () => {
    for (; next < pids.length; next++) {
      try {
        process.kill(pids[next] as number, 0);
        return undefined;
      } catch {
        // gone: look at the next one
      }
    }
    return true;
  });
}

/** The floor: `hosts` copies of the workload started by a bare shell loop (a fork and an exec each, as agents start them). */
async function floorRun(hosts: number, parent: string): Promise<number> {
  const dir = await mkdtemp(join(parent, "floor-"));
  const loop = `i=0; while [ $i -lt ${hosts} ]; do MARKS="$MARKS" GANGWAY_ATTEMPT=1 GANGWAY_WORKER_INDEX=$i STOP_AT=9 sh -c "$SCRIPT" & i=$((i+1)); done; wait`;
  const t0 = Date.now();
  const child = spawn("/bin/sh", ["-c", loop], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", MARKS: dir, SCRIPT },
    detached: true,
    stdio: "ignore",
  });
  try {
    const started = await awaitMarks("floor starts", dir, 1, hosts);
    return Math.max(...started) - t0;
  } finally {
    process.kill(-(child.pid ?? 0), "SIGKILL");
    await new Promise((r) => child.once("exit", r));
  }
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** The states a recovery goes through, in order; AwaitAttempt's figure is notice → its wait ended. */
const RECOVERY_STEPS = [
  "AwaitAttempt",
  "CheckResults",
  "Teardown",
  "ScaleSlices",
  "PreparePlacement",
  "LaunchHosts",
];

/** How long each state of the recovery took (the first time each ran after `t1`), from the execution's history. */
async function recoverySteps(sfn: SFNClient, executionArn: string, t1: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const entered = new Map<string, number>();
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(
      new GetExecutionHistoryCommand({ executionArn, nextToken, maxResults: 1000 }),
    );
    for (const e of page.events ?? []) {
      const at = e.timestamp?.getTime() ?? 0;
      if (at < t1) continue;
      const into = e.stateEnteredEventDetails?.name;
      if (into !== undefined && !entered.has(into)) entered.set(into, at);
      const outOf = e.stateExitedEventDetails?.name;
      if (outOf === undefined || !RECOVERY_STEPS.includes(outOf) || out.has(outOf)) continue;
      out.set(outOf, at - (outOf === "AwaitAttempt" ? t1 : (entered.get(outOf) ?? at)));
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return out;
}

async function pidsOf(jobId: string): Promise<number[]> {
  const pids: number[] = [];
  for (const e of await readdir("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const env = await readFile(`/proc/${e}/environ`, "latin1").catch(() => "");
    if (env.includes(`GANGWAY_JOB_ID=${jobId}\0`)) pids.push(Number(e));
  }
  return pids;
}

async function benchSize(slices: number) {
  const hosts = slices * 4;
  const stateDir = await mkdtemp(join(tmpdir(), "gangway-bench-"));
  const stack = await startLocalStack({ cluster: `v4-32x${slices + 1}`, stateDir, provisioningDelayMs: 0 });
  const sfn = createSfnClient({ endpoint: stack.sfnEndpoint });
  const pubsub = new PubSub({
    projectId: stack.projectId,
    apiEndpoint: stack.pubsubEmulatorHost,
    emulatorMode: true,
  });
  const token = (await readFile(join(stateDir, "agent-token"), "utf8")).trim();
  const launch: number[] = [];
  const baseline: number[] = [];
  const gone: number[] = [];
  const recovery: number[] = [];
  const steps = new Map<string, number[]>(RECOVERY_STEPS.map((step) => [step, []]));
  const floor: number[] = [];
  const cpu: CpuUse[] = [];
  try {
    await new Promise((r) => setTimeout(r, settleMs));
    for (let run = 0; run < runs; run++) {
      floor.push(await floorRun(hosts, stateDir));
      // Baseline: the same agents, called directly: lease and Run on every host of N slices.
      {
        const dir = await mkdtemp(join(stateDir, "marks-"));
        const chosen = stack.provider
          .listSlices()
          .slice(0, slices)
          .flatMap((s) => s.hosts);
        const clients = chosen.map((h) => createAgentClient(h.agent ?? "", { token }));
        const t0 = Date.now();
        await mapLimit(clients, 128, async (c, i) => {
          const leaseId = `baseline-${run}`;
          await c.acquireLease({ leaseId, jobId: leaseId, epoch: 1, ttlMs: 60_000 });
          await c.run({
            leaseId,
            epoch: 1,
            jobId: leaseId,
            attempt: 1,
            sliceIndex: 0,
            sliceName: "b",
            hostIndex: i,
            argv: ["sh", "-c", SCRIPT],
            env: { MARKS: dir, STOP_AT: "1", GANGWAY_WORKER_INDEX: String(i), GANGWAY_ATTEMPT: "1" },
          });
        });
        const started = await awaitMarks("baseline starts", dir, 1, hosts);
        baseline.push(Math.max(...started) - t0);
        await mapLimit(clients, 128, async (c) => {
          await c.releaseLease({ leaseId: `baseline-${run}`, epoch: 1, graceMs: 100 });
          c.close();
        });
        // Both launches start with the agents' next shells forked.
        await new Promise((r) => setTimeout(r, settleMs));
      }
      // The control plane: StartExecution → all started; then a notice → old gone → new started.
      const dir = await mkdtemp(join(stateDir, "marks-"));
      const jobId = `bench-${slices}-${run}`;
      const spec = {
        name: "bench",
        accelerator: { kind: "tpu", type: "v4-32", slices },
        workload: { command: ["sh", "-c", SCRIPT], env: { MARKS: dir, STOP_AT: "2" } },
        timeouts: { cancelGraceSeconds: 1 },
      };
      const t0 = Date.now();
      const { executionArn } = await sfn.send(
        new StartExecutionCommand({
          stateMachineArn: stack.stateMachineArn,
          name: jobId,
          input: JSON.stringify(spec),
        }),
      );
      const first = await awaitMarks("launch", dir, 1, hosts);
      launch.push(Math.max(...first) - t0);
      await new Promise((r) => setTimeout(r, settleMs));
      const oldPids = await pidsOf(jobId);
      const record = JSON.parse(
        await readFile(join(stateDir, "results", "jobs", jobId, "attempts", "1", "record.json"), "utf8"),
      ) as {
        hosts: Array<{ sliceName: string }>;
      };
      const cpu0 = await sampleCpu();
      const t1 = Date.now();
      await pubsub
        .topic(PREEMPTION_NOTICES_TOPIC)
        .publishMessage({ json: { slice: record.hosts[0]?.sliceName } });
      await allGone(oldPids);
      gone.push(Date.now() - t1);
      const second = await awaitMarks("relaunch", dir, 2, hosts);
      recovery.push(Math.max(...second) - t1);
      cpu.push(cpuUse(cpu0, await sampleCpu()));
      await waitFor("the job's end", async () => {
        const d = await sfn.send(new DescribeExecutionCommand({ executionArn }));
        return d.status === "RUNNING" ? undefined : d.status;
      });
      for (const [step, ms] of await recoverySteps(sfn, executionArn ?? "", t1)) steps.get(step)?.push(ms);
      // The preempted slice was deleted: bring the spare back before the next run.
      while (stack.provider.listSlices().length < slices + 1) await stack.provider.requestSlices("v4-32", 1);
    }
  } finally {
    await pubsub.close();
    sfn.destroy();
    await stack.close();
    await rm(stateDir, { recursive: true, force: true });
  }
  return { hosts, launch, baseline, gone, recovery, floor, steps, cpu };
}

async function benchRss(jobs: number) {
  const stateDir = await mkdtemp(join(tmpdir(), "gangway-bench-rss-"));
  const stack = await startLocalStack({ cluster: `v4-8x${jobs}`, stateDir, provisioningDelayMs: 0 });
  const sfn = createSfnClient({ endpoint: stack.sfnEndpoint });
  try {
    global.gc?.();
    const idle = process.memoryUsage().rss;
    const arns: string[] = [];
    for (let i = 0; i < jobs; i++) {
      const spec = {
        name: "rss",
        accelerator: { kind: "tpu", type: "v4-8", slices: 1 },
        workload: { command: ["sleep", "30"] },
      };
      const { executionArn } = await sfn.send(
        new StartExecutionCommand({
          stateMachineArn: stack.stateMachineArn,
          name: `rss-${i}`,
          input: JSON.stringify(spec),
        }),
      );
      if (executionArn) arns.push(executionArn);
    }
    await new Promise((r) => setTimeout(r, 3000));
    global.gc?.();
    const busy = process.memoryUsage().rss;
    return { idle, busy };
  } finally {
    sfn.destroy();
    await stack.close();
    await rm(stateDir, { recursive: true, force: true });
  }
}

/**
 * RSS of the same 20 agents alone: `gangway cluster` in a process of its own (the same runtime,
 * tsx included), so the control plane's share is the stack's RSS less this.
 */
async function agentsAloneRss(jobs: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "gangway-bench-agents-"));
  const child = spawn(
    process.execPath,
    [
      "bin/gangway.mjs",
      "cluster",
      "--cluster",
      `v4-8x${jobs}`,
      "--work-dir",
      dir,
      "--state-file",
      join(dir, "cluster.json"),
    ],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        if (out.includes('"ready":true')) resolve();
      });
      child.once("exit", () => reject(new Error("gangway cluster exited before it was ready")));
    });
    await new Promise((r) => setTimeout(r, 3000));
    const status = await readFile(`/proc/${child.pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) * 1024;
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    await rm(dir, { recursive: true, force: true });
  }
}

console.log(`control-plane benchmark: ${runs} runs per size, node ${process.version}`);
// RSS first, in a process that has run nothing else yet.
const rss = await benchRss(20);
const agentsAlone = await agentsAloneRss(20);
const mib = (n: number) => (n / 2 ** 20).toFixed(0);
console.log(
  `RSS of the whole embedded stack (engine, emulator, functions, 20 agents) in this process: idle ${mib(rss.idle)} MiB, with 20 concurrent jobs ${mib(rss.busy)} MiB`,
);
console.log(
  `RSS of the 20 agents alone (gangway cluster, own process, idle): ${mib(agentsAlone)} MiB → the control plane's share: idle ${mib(rss.idle - agentsAlone)} MiB, with 20 jobs ${mib(rss.busy - agentsAlone)} MiB`,
);
console.log(
  "hosts | launch (state machine) | launch baseline (direct fan-out) | ratio | overhead | notice → old gone | notice → new started | floor (bare shell starts the same workloads)",
);
const stepLines: string[] = [];
const cpuLines: string[] = [];
for (const slices of sizes) {
  const r = await benchSize(slices);
  const bySteps = [...r.steps].map(([step, ms]) => `${step} ${stats(ms).median.toFixed(0)}`);
  stepLines.push(`${String(r.hosts).padStart(5)} | ${bySteps.join(" · ")}`);
  const m = (pick: (u: CpuUse) => number) => stats(r.cpu.map(pick)).median.toFixed(0);
  cpuLines.push(
    `${String(r.hosts).padStart(5)} | ${m((u) => u.wall)} | ${m((u) => u.capacity)} | ${m((u) => u.machineBusy)} | ${m((u) => u.stolen)} | ${m((u) => u.mainThread)} | ${m((u) => u.otherThreads)} | ${m((u) => u.otherProcesses)}`,
  );
  const l = stats(r.launch).median;
  const b = stats(r.baseline).median;
  console.log(
    `${String(r.hosts).padStart(5)} | ${fmt(r.launch)} | ${fmt(r.baseline)} | ${(l / b).toFixed(2)}× | ${l - b >= 0 ? "+" : ""}${(l - b).toFixed(0)} ms | ${fmt(r.gone)} | ${fmt(r.recovery)} | ${fmt(r.floor)}`,
  );
}
console.log("recovery by state, medians in ms (AwaitAttempt: notice → the attempt's wait ended):");
for (const line of stepLines) console.log(line);
console.log(
  "CPU during the recovery (notice → all new seen), medians in ms: hosts | wall | the cores' capacity | busy, all of the machine | stolen by the hypervisor | this process's JS thread | its other threads (GC, compilers, fs) | other processes (workloads, shells, kernel)",
);
for (const line of cpuLines) console.log(line);
