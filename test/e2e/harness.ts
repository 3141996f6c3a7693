import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DescribeExecutionCommand,
  type HistoryEvent,
  type SFNClient,
  StartExecutionCommand,
} from "@aws-sdk/client-sfn";
import { main } from "../../cli/main.js";
import { createProgressReader } from "../../cli/progress.js";
import type { JobStatus } from "../../core/job-status.js";
import { createDirectoryResultsStore } from "../../functions/clients/results-store.js";
import { createSfnClient, executionHistory } from "../../functions/clients/sfn.js";
import type { LocalQuota } from "../../infra/local/cluster/local-provider.js";
import { type LocalStack, startLocalStack } from "../../infra/local/stack.js";

export const REPO = new URL("../../", import.meta.url).pathname;
export const BEHAVE = "test/e2e/workloads/behave.mjs";

/** A job spec running the scenario workload with `args` on `accelerator`. */
export function behaveJob(
  name: string,
  accelerator: Record<string, unknown>,
  args: string[] = [],
  extra: Record<string, unknown> = {},
) {
  return {
    name,
    accelerator,
    workload: { command: ["node", BEHAVE, ...args] },
    timeouts: { heartbeatSeconds: 30, cancelGraceSeconds: 2 },
    ...extra,
  };
}

/** What a finished job looked like. */
export interface JobRun {
  jobId: string;
  executionArn: string;
  status: string;
  /** The JobStatus: the output when the execution succeeded, its cause when it failed. */
  job: JobStatus | undefined;
  error: string | undefined;
  history: HistoryEvent[];
  lines: string[];
}

/** The processes (pids) whose environment says they belong to job `jobId`. */
export async function processesOfJob(jobId: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = await readFile(`/proc/${entry}/environ`, "latin1");
      if (environ.split("\0").includes(`GANGWAY_JOB_ID=${jobId}`)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/** An embedded stack for one test file, and a way to run jobs on it to the end. */
export async function startTestStack(
  cluster: string,
  options: { provisioningDelayMs?: number; historyBudget?: number; quota?: LocalQuota } = {},
) {
  const stateDir = await mkdtemp(join(tmpdir(), "gangway-e2e-"));
  const stack: LocalStack = await startLocalStack({
    cluster,
    stateDir,
    workloadCwd: REPO,
    provisioningDelayMs: options.provisioningDelayMs ?? 300,
    historyBudget: options.historyBudget,
    ...(options.quota ? { quota: options.quota } : {}),
  });
  const sfn: SFNClient = createSfnClient({ endpoint: stack.sfnEndpoint });

  const history = (executionArn: string): Promise<HistoryEvent[]> => executionHistory(sfn, executionArn);

  /**
   * Run a job to its end. `onRunning(attempt, slices)` is called once per attempt when its hosts
   * are running (to inject preemptions); `timeoutMs` bounds the whole run.
   */
  async function runJob(
    spec: unknown,
    hooks: {
      onRunning?: (attempt: number, slices: string[], jobId: string) => Promise<void> | void;
      timeoutMs?: number;
      name?: string;
    } = {},
  ): Promise<JobRun> {
    const jobId = hooks.name ?? `e2e-${randomBytes(5).toString("hex")}`;
    const { executionArn } = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn: stack.stateMachineArn,
        name: jobId,
        input: JSON.stringify(spec),
      }),
    );
    if (!executionArn) throw new Error("no executionArn");
    const reader = createProgressReader();
    const lines: string[] = [];
    const deadline = Date.now() + (hooks.timeoutMs ?? 60_000);
    const hooked = new Set<number>();
    let seen = 0;
    for (;;) {
      const events = await history(executionArn);
      for (const e of events.slice(seen)) lines.push(...reader.onEvent(e));
      seen = events.length;
      const p = reader.progress;
      if (p.phase === "running" && !hooked.has(p.attempt)) {
        hooked.add(p.attempt);
        await hooks.onRunning?.(p.attempt, [...p.slices], jobId);
      }
      if (p.phase === "done") break;
      if (Date.now() > deadline) throw new Error(`job ${jobId} did not end in time:\n${lines.join("\n")}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const d = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    const text = d.status === "SUCCEEDED" ? d.output : d.cause;
    let job: JobStatus | undefined;
    try {
      job = text ? (JSON.parse(text) as JobStatus) : undefined;
    } catch {
      job = undefined;
    }
    return {
      jobId,
      executionArn,
      status: d.status ?? "?",
      job,
      error: d.error,
      history: await history(executionArn),
      lines,
    };
  }

  return {
    stack,
    sfn,
    /** The stack's results store, read from its directory. */
    store: createDirectoryResultsStore(join(stateDir, "results")),
    runJob,
    history,
    async close() {
      sfn.destroy();
      await stack.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** Run `gangway ...argv` in this process against `stack`'s API; answers its exit code and output. */
export async function cliAgainst(stack: Pick<LocalStack, "api" | "webhookSecret">, argv: string[]) {
  let stdout = "";
  let stderr = "";
  // `--flag=value`: a secret made before secrets were hex may start with "-", which parseArgs
  // would take for an option.
  const code = await main([...argv, `--api=${stack.api}`, `--webhook-secret=${stack.webhookSecret}`], {
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
    cwd: REPO,
    signal: new AbortController().signal,
  });
  return { code, stdout, stderr };
}
