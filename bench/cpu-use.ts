import { readdir, readFile } from "node:fs/promises";
import { cpus } from "node:os";

/** Milliseconds per clock tick of /proc (USER_HZ is 100 on every Linux this runs on). */
const TICK_MS = 10;

/** CPU time used so far, in ms: the machine's (busy, all processes and the kernel) and this process's threads. */
export interface CpuSample {
  at: number;
  machineBusy: number;
  /** Time the hypervisor gave this VM's CPUs to others (steal): capacity the machine never had. */
  stolen: number;
  /** This process's JS thread (the event loop). */
  mainThread: number;
  /** This process's other threads: V8's (GC, compilers) and libuv's (fs). */
  otherThreads: number;
}

/** utime + stime of a /proc stat line, in ms (the fields after the command's closing parenthesis). */
const threadMs = (stat: string) => {
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
};

/** Read the machine's and this process's CPU time now (Linux only). */
export async function sampleCpu(): Promise<CpuSample> {
  const at = performance.now();
  const [cpu] = (await readFile("/proc/stat", "latin1")).split("\n");
  // user nice system idle iowait irq softirq steal …: busy is everything but idle, iowait and steal.
  const t = (cpu ?? "").split(/\s+/).slice(1).map(Number);
  const busy = [0, 1, 2, 5, 6].reduce((sum, i) => sum + (t[i] ?? 0), 0) * TICK_MS;
  const stolen = (t[7] ?? 0) * TICK_MS;
  let mainThread = 0;
  let otherThreads = 0;
  for (const tid of await readdir("/proc/self/task")) {
    const stat = await readFile(`/proc/self/task/${tid}/stat`, "latin1").catch(() => "");
    if (!stat) continue;
    if (tid === String(process.pid)) mainThread += threadMs(stat);
    else otherThreads += threadMs(stat);
  }
  return { at, machineBusy: busy, stolen, mainThread, otherThreads };
}

/** Where the machine's CPU went between two samples, in ms. */
export interface CpuUse {
  wall: number;
  /** What the cores could have given: wall × cores. */
  capacity: number;
  machineBusy: number;
  stolen: number;
  mainThread: number;
  otherThreads: number;
  /** Everything outside this process: workloads, shells, the kernel's own threads. */
  otherProcesses: number;
}

/** CPU used between `a` and `b`. */
export function cpuUse(a: CpuSample, b: CpuSample): CpuUse {
  const wall = b.at - a.at;
  const mainThread = b.mainThread - a.mainThread;
  const otherThreads = b.otherThreads - a.otherThreads;
  const machineBusy = b.machineBusy - a.machineBusy;
  return {
    wall,
    capacity: wall * cpus().length,
    machineBusy,
    stolen: b.stolen - a.stolen,
    mainThread,
    otherThreads,
    otherProcesses: Math.max(0, machineBusy - mainThread - otherThreads),
  };
}
