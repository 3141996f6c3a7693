import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { InvalidJobSpec } from "../../core/errors.js";
import { createDirectoryResultsStore } from "../../functions/clients/results-store.js";
import { startLocalStack } from "../../infra/local/stack.js";
import { sfnTransport } from "../client/transport.js";
import { type CliCommand, EXIT, UsageError, withStopBeforeExit } from "../command.js";
import { followJob } from "../follow.js";
import { loadJobFile } from "../load-job.js";
import { clusterOption } from "../options.js";

const USAGE = `usage: gangway run <job.yaml|job.json> [--cluster SPEC] [--preempt-after SECONDS] [--state-dir DIR] [--history-budget N] [--json]

Run one job end to end on a fresh embedded stack (engine, Pub/Sub emulator, functions, local
cluster), with live progress — attempt, slices, hosts, states — then its results.

  --cluster SPEC            the local cluster (default v4-16x2)
  --preempt-after SECONDS   inject one preemption: the first attempt's last slice is preempted
                            that long after its hosts started (the local provider kills its
                            agents and workloads, publishes a notice, brings a new slice back)
  --state-dir DIR           keep the stack's state there (default: a temporary directory, removed)
  --history-budget N        continue in a new execution past N history events (default 20000;
                            a low one shows a long job's continuation); run follows it
  --json                    print only the final JobStatus as JSON

exit codes: 0 the job succeeded · 1 it ended FAILED, PREEMPTED, ERROR or CANCELLED · 2 bad usage or job`;

/** `gangway run`: the main job — one job through the whole embedded stack. */
export const command: CliCommand = {
  name: "run",
  summary: "run a job end to end on a fresh embedded stack, with live progress",
  usage: USAGE,
  async run(ctx) {
    let parsed: ReturnType<
      typeof parseArgs<{ options: Record<string, { type: "string" | "boolean" }>; allowPositionals: true }>
    >;
    try {
      parsed = parseArgs({
        args: ctx.argv,
        allowPositionals: true,
        options: {
          cluster: { type: "string" },
          "preempt-after": { type: "string" },
          "state-dir": { type: "string" },
          "history-budget": { type: "string" },
          json: { type: "boolean" },
        },
      });
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n\n${USAGE}`);
    }
    const { values, positionals } = parsed;
    if (positionals.length !== 1) throw new UsageError(`run takes exactly one job file\n\n${USAGE}`);
    const preemptAfter = values["preempt-after"] === undefined ? undefined : Number(values["preempt-after"]);
    if (preemptAfter !== undefined && !(preemptAfter >= 0)) {
      throw new UsageError(`--preempt-after: expected seconds ≥ 0, got ${String(values["preempt-after"])}`);
    }
    const historyBudget =
      values["history-budget"] === undefined ? undefined : Number(values["history-budget"]);
    if (historyBudget !== undefined && !(Number.isInteger(historyBudget) && historyBudget > 0)) {
      throw new UsageError(
        `--history-budget: expected a whole number of events > 0, got ${String(values["history-budget"])}`,
      );
    }
    const cluster = typeof values.cluster === "string" ? values.cluster : "v4-16x2";
    // Checked before the stack starts: a bad spec is bad usage, not a stack that fails halfway up.
    clusterOption(cluster);
    const json = values.json === true;
    let job: Awaited<ReturnType<typeof loadJobFile>>;
    try {
      job = await loadJobFile(positionals[0] ?? "", ctx.cwd);
    } catch (e) {
      if (!(e instanceof InvalidJobSpec)) throw e;
      ctx.stderr(
        `gangway run: ${e.issues.length} problem(s) in ${positionals[0]}:\n${e.issues.map((i) => `  ${i.message}\n`).join("")}`,
      );
      return EXIT.usage;
    }

    const t0 = Date.now();
    const say = (line: string) => {
      if (!json) ctx.stdout(`[+${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}\n`);
    };
    const ownDir = values["state-dir"] === undefined;
    const stateDir = ownDir ? await mkdtemp(join(tmpdir(), "gangway-run-")) : String(values["state-dir"]);
    // Until the stack is closed, a second Ctrl-C must not kill this process: its workloads would live on.
    try {
      return await withStopBeforeExit(
        () =>
          startLocalStack({
            cluster,
            stateDir,
            workloadCwd: ctx.cwd,
            provisioningDelayMs: 1000,
            historyBudget,
          }),
        async (stack) => {
          say(
            `embedded stack up: cluster ${cluster}, engine ${stack.sfnEndpoint}, Pub/Sub ${stack.pubsubEmulatorHost}`,
          );
          const transport = sfnTransport({
            endpoint: stack.sfnEndpoint,
            stateMachineArn: stack.stateMachineArn,
            results: createDirectoryResultsStore(join(stateDir, "results")),
          });
          const submitted = await transport.submit(job);
          say(
            `job ${submitted.jobId} submitted (${job.accelerator.kind === "tpu" ? `${job.accelerator.type} × ${JSON.stringify(job.accelerator.slices)}` : job.accelerator.kind})`,
          );
          let runningSince: number | undefined;
          let injected = false;
          // Followed as `gangway submit --wait` follows a job, continued executions included.
          const status = await followJob(transport, submitted, {
            line: say,
            signal: ctx.signal,
            pollMs: 100,
            onPoll: async (p) => {
              if (p.phase === "running" && p.attempt === 1) runningSince ??= Date.now();
              if (
                preemptAfter === undefined ||
                injected ||
                runningSince === undefined ||
                Date.now() - runningSince < preemptAfter * 1000
              )
                return;
              injected = true;
              const victim = p.slices.at(-1);
              if (victim) {
                say(
                  `injecting a preemption: slice ${victim} vanishes (its agents and workloads killed, a notice published)`,
                );
                await stack.provider.preemptSlice(victim);
              }
            },
          });
          if (!status) {
            say("interrupted: stopping the stack");
            return EXIT.failed;
          }
          if (json) {
            ctx.stdout(`${JSON.stringify(status)}\n`);
            return status.status === "SUCCEEDED" ? EXIT.ok : EXIT.failed;
          }
          const c = status.counters;
          const tally = ` after ${c.attempts} attempt(s): ${c.preemptions} preemption(s), ${c.failures} failure(s)`;
          if (status.status !== "SUCCEEDED") {
            say(`${status.status}${tally}: ${status.error?.name}: ${status.error?.message ?? ""}`);
            return EXIT.failed;
          }
          say(`SUCCEEDED${tally}`);
          const result = status.result;
          ctx.stdout(`results (${job.flatten ? "flattened" : "by slice"}, slice order then host order):\n`);
          if (Array.isArray(result))
            for (const [i, r] of result.entries()) ctx.stdout(`  [${i}] ${JSON.stringify(r)}\n`);
          else ctx.stdout(`  ${JSON.stringify(result)}\n`);
          return EXIT.ok;
        },
        (stack) => stack.close(),
      );
    } finally {
      if (ownDir) await rm(stateDir, { recursive: true, force: true });
    }
  },
};
