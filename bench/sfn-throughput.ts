/**
 * Throughput and latency of the embedded Step Functions engine (durable, journaling to a state
 * directory), compared in the same run with the in-memory `aws-local-stepfunctions` package on the
 * same definitions. Prints median and spread (min–max) over several runs, taken after both sides
 * have warmed up the same way, and each side's first (cold) run apart.
 *
 * Run: `npm run bench:sfn` (options: --runs=N, default 5; --warmup=N rounds of both workloads on
 * both sides, default 10, and for at least --warmup-ms=T, default 3000).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SFNClient, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { StateMachine } from "aws-local-stepfunctions";
import { createSfnEngine, type SfnEngine } from "../infra/local/sfn/engine.js";
import { startSfnServer } from "../infra/local/sfn/server.js";

const RUNS = Number(process.argv.find((a) => a.startsWith("--runs="))?.slice(7) ?? 5);
const WARMUP = Number(process.argv.find((a) => a.startsWith("--warmup="))?.slice(9) ?? 10);
const WARMUP_MS = Number(process.argv.find((a) => a.startsWith("--warmup-ms="))?.slice(12) ?? 3000);
const ROLE = "arn:aws:iam::123456789012:role/bench";

const passChain = (n: number) => {
  const States: Record<string, unknown> = {};
  for (let i = 0; i < n; i++)
    States[`S${i}`] = i + 1 < n ? { Type: "Pass", Next: `S${i + 1}` } : { Type: "Pass", End: true };
  return { StartAt: "S0", States };
};
const bigMap = {
  StartAt: "M",
  States: {
    M: {
      Type: "Map",
      ItemsPath: "$.items",
      MaxConcurrency: 40,
      ItemProcessor: { StartAt: "P", States: { P: { Type: "Pass", Parameters: { "v.$": "$" }, End: true } } },
      End: true,
    },
  },
};
// Items are objects: the peer refuses a Parameters path that selects a falsy value such as 0.
const mapInput = { items: Array.from({ length: 1000 }, (_, i) => ({ i })) };

function stats(xs: number[]): { median: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return {
    median: s[Math.floor(s.length / 2)] as number,
    min: s[0] as number,
    max: s[s.length - 1] as number,
  };
}
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}
const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
function line(label: string, xs: number[], unit: string): void {
  const s = stats(xs);
  console.log(
    `${label.padEnd(58)} median ${fmt(s.median).padStart(9)} ${unit}  (min ${fmt(s.min)}, max ${fmt(s.max)})`,
  );
}

/** Our engine, durable, with a completion hook so nothing polls. */
async function ours() {
  const dir = mkdtempSync(join(tmpdir(), "sfn-bench-"));
  const waiters = new Map<string, () => void>();
  const engine: SfnEngine = await createSfnEngine({
    stateDir: dir,
    onExecutionEnd: (arn) => waiters.get(arn)?.(),
  });
  let k = 0;
  const machine = async (definition: unknown) =>
    (
      (await engine.call("CreateStateMachine", {
        name: `b${k++}`,
        roleArn: ROLE,
        definition: JSON.stringify(definition),
      })) as {
        stateMachineArn: string;
      }
    ).stateMachineArn;
  const run = async (arn: string, input: unknown) => {
    const name = `e${k++}`;
    const done = new Promise<void>((r) =>
      waiters.set(`${arn.replace(":stateMachine:", ":execution:")}:${name}`, r),
    );
    const t0 = performance.now();
    const s = (await engine.call("StartExecution", {
      stateMachineArn: arn,
      name,
      input: JSON.stringify(input),
    })) as {
      executionArn: string;
    };
    await done;
    const ms = performance.now() - t0;
    const d = (await engine.call("DescribeExecution", { executionArn: s.executionArn })) as {
      status: string;
    };
    if (d.status !== "SUCCEEDED") throw new Error(`bench execution ${d.status}`);
    return ms;
  };
  return { engine, dir, machine, run };
}

/** The peer's machine for a definition, built once and run many times, as ours is created once. */
function peerMachine(definition: unknown): StateMachine {
  return new StateMachine(definition as never, { validationOptions: { checkArn: false } as never });
}
async function peerRun(sm: StateMachine, input: unknown): Promise<number> {
  const t0 = performance.now();
  await sm.run(input as never).result;
  return performance.now() - t0;
}

const o = await ours();
const chainArn = await o.machine(passChain(1000));
const mapArn = await o.machine(bigMap);
// Built outside the loops: building one compiles a schema validator, garbage that would otherwise
// be collected during whichever run comes next.
const peerChain = peerMachine(passChain(1000));
const peerMap = peerMachine(bigMap);
// Each side's first run, before the JIT has compiled anything of it: what a fresh process sees.
const coldOurs = 1000 / ((await o.run(chainArn, {})) / 1000);
const coldPeer = 1000 / ((await peerRun(peerChain, {})) / 1000);
// Then both warm up alike, by rounds and by time: the JIT compiles hot code on a background thread,
// which on a busy machine takes seconds to get to (the engine's larger loop comes last), and the
// measured runs compare steady states.
const warmupStart = performance.now();
let rounds = 0;
for (; rounds < WARMUP || performance.now() - warmupStart < WARMUP_MS; rounds++) {
  await o.run(chainArn, {});
  await peerRun(peerChain, {});
  await o.run(mapArn, mapInput);
  await peerRun(peerMap, mapInput);
}
const warmupSeconds = (performance.now() - warmupStart) / 1000;

const chainOurs: number[] = [];
const chainPeer: number[] = [];
const mapOurs: number[] = [];
const mapPeer: number[] = [];
for (let r = 0; r < RUNS; r++) {
  chainOurs.push(1000 / ((await o.run(chainArn, {})) / 1000));
  chainPeer.push(1000 / ((await peerRun(peerChain, {})) / 1000));
  // A 1,000-item Map of one Pass each: 1,000 iterations + 1,000 Pass states.
  mapOurs.push(2000 / ((await o.run(mapArn, mapInput)) / 1000));
  mapPeer.push(2000 / ((await peerRun(peerMap, mapInput)) / 1000));
}
console.log(
  `runs: ${RUNS} after ${rounds} warm-up rounds (${warmupSeconds.toFixed(1)} s) of both workloads on both sides (durable engine journals to ${o.dir}; peer is in memory)`,
);
line("1,000-state Pass chain, transitions/s — gangway (durable)", chainOurs, "/s");
line("1,000-state Pass chain, transitions/s — aws-local-stepfunctions", chainPeer, "/s");
line("1,000-item Map, transitions/s — gangway (durable)", mapOurs, "/s");
line("1,000-item Map, transitions/s — aws-local-stepfunctions", mapPeer, "/s");
line("Pass chain, first (cold) run, transitions/s — gangway (durable)", [coldOurs], "/s");
line("Pass chain, first (cold) run, transitions/s — aws-local-stepfunctions", [coldPeer], "/s");

// StartExecution through the real API (HTTP + the official client), executions that stay RUNNING.
const server = await startSfnServer({ engine: o.engine });
const client = new SFNClient({
  endpoint: server.url,
  region: "us-east-1",
  credentials: { accessKeyId: "x", secretAccessKey: "x" },
});
const waitArn = await o.machine({ StartAt: "W", States: { W: { Type: "Wait", Seconds: 3600, End: true } } });
const p50s: number[] = [];
const p99s: number[] = [];
const rates: number[] = [];
const peerStart: number[] = [];
for (let r = 0; r < RUNS; r++) {
  const lat: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t0 = performance.now();
    await client.send(new StartExecutionCommand({ stateMachineArn: waitArn, input: '{"i":1}' }));
    lat.push(performance.now() - t0);
  }
  p50s.push(pct(lat, 50));
  p99s.push(pct(lat, 99));
  const N = 1000;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next++ < N) await client.send(new StartExecutionCommand({ stateMachineArn: waitArn }));
    }),
  );
  rates.push(N / ((performance.now() - t0) / 1000));
  // The peer's nearest equivalent: constructing and starting a run (no API, no durability).
  const peerLat: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t1 = performance.now();
    const sm = new StateMachine({
      StartAt: "W",
      States: { W: { Type: "Wait", Seconds: 3600, End: true } },
    } as never);
    const exec = sm.run({ i: 1 } as never);
    peerLat.push(performance.now() - t1);
    exec.abort();
    await exec.result.catch(() => {});
  }
  peerStart.push(pct(peerLat, 50));
}
line("StartExecution p50 latency, ms — gangway (HTTP + SDK, durable)", p50s, "ms");
line("StartExecution p99 latency, ms — gangway (HTTP + SDK, durable)", p99s, "ms");
line("StartExecution rate, 16 in flight — gangway (HTTP + SDK)", rates, "/s");
line("start a run p50, ms — aws-local-stepfunctions (in-process call)", peerStart, "ms");

client.destroy();
await server.close();
await o.engine.close();
rmSync(o.dir, { recursive: true, force: true });
