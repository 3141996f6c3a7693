import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DescribeExecutionCommand, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../cli/main.js";
import { attemptStore } from "../../functions/attempts.js";
import { behaveJob, processesOfJob, REPO, startTestStack } from "./harness.js";

// Before the 25,000-event history limit a job continues as a new execution, counters carried.
// The budget is lowered here so that it happens after two attempts.

let t: Awaited<ReturnType<typeof startTestStack>>;
beforeAll(async () => {
  t = await startTestStack("v4-8x1", { historyBudget: 60 });
});
afterAll(async () => {
  await t?.close();
});

describe("continuing a long job as a new execution", () => {
  // Three attempts end with an exit code that asks to be recovered; the fourth succeeds.
  const spec = behaveJob(
    "long",
    { kind: "tpu", type: "v4-8", slices: 1 },
    ["--fail-until-attempt", "4", "--exit-code", "75"],
    {
      retry: { maxPreemptions: 5, maxFailures: 0, retryOnExitCodes: [75] },
    },
  );

  it("carries the job and its counters into <job>-c2 and finishes there", async () => {
    const first = await t.runJob(spec);
    expect(first.status).toBe("SUCCEEDED");
    const continuedAs = (first.job as unknown as { continuedAs: string }).continuedAs;
    expect(continuedAs).toMatch(new RegExp(`:${first.jobId}-c2$`));
    let done: { status?: string | undefined; output?: string | undefined } | undefined;
    for (let i = 0; i < 400; i++) {
      const d = await t.sfn.send(new DescribeExecutionCommand({ executionArn: continuedAs }));
      if (d.status !== "RUNNING") {
        done = d;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(done?.status).toBe("SUCCEEDED");
    const status = JSON.parse(done?.output ?? "{}");
    expect(status).toMatchObject({
      status: "SUCCEEDED",
      info: { jobId: first.jobId, executionArn: first.executionArn },
      counters: { attempts: 4, preemptions: 3, failures: 0 },
    });
    expect(status.result).toEqual([{ slice: 0, host: 0, worker: 0, attempt: 4 }]);
  });

  it("is followed by gangway run to the job's end", async () => {
    const dir = await mkdtemp(join(tmpdir(), "gangway-run-long-"));
    try {
      const file = join(dir, "long.json");
      await writeFile(file, JSON.stringify(spec));
      let stdout = "";
      const code = await main(
        ["run", file, "--cluster", "v4-8x1", "--history-budget", "60", "--state-dir", dir, "--json"],
        {
          stdout: (text) => {
            stdout += text;
          },
          stderr: () => {},
          cwd: REPO,
          signal: new AbortController().signal,
        },
      );
      expect(code).toBe(0);
      expect(JSON.parse(stdout)).toMatchObject({
        status: "SUCCEEDED",
        counters: { attempts: 4, preemptions: 3, failures: 0 },
        result: [{ attempt: 4 }],
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("cleans up and stops as a fault of gangway when the continuation cannot start", async () => {
    // An execution that already holds the continuation's name (with another input) makes
    // StartExecution fail with ExecutionAlreadyExists: ContinueExecution's Catch must tear the
    // job down, close its record and fail the execution, not leave the host leased.
    const jobId = `e2e-blocked-${Date.now().toString(36)}`;
    await t.sfn.send(
      new StartExecutionCommand({
        stateMachineArn: t.stack.stateMachineArn,
        name: `${jobId}-c2`,
        input: JSON.stringify({ name: "blocker" }),
      }),
    );
    const run = await t.runJob(spec, { name: jobId });
    expect(run.status).toBe("FAILED");
    expect(run.error).toBe("InternalError");
    const entered = run.history.flatMap((e) => e.stateEnteredEventDetails?.name ?? []);
    expect(entered.slice(-3)).toEqual(["ContinueExecution", "CleanUpAfterFault", "Faulted"]);
    expect(JSON.stringify(run.history)).toContain("ExecutionAlreadyExists");
    expect((await attemptStore(t.store).current(jobId))?.state).toBe("done");
    expect(await processesOfJob(jobId)).toEqual([]);
    // The only host was given back: the next job gets it and runs.
    const next = await t.runJob(behaveJob("after", { kind: "tpu", type: "v4-8", slices: 1 }));
    expect(next.status).toBe("SUCCEEDED");
  });
});
