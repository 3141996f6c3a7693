import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execute, executeResumable, withExecutor } from "../../cli/client/index.js";
import { BEHAVE, behaveJob, cliAgainst, processesOfJob, startTestStack } from "./harness.js";

// The CLI and the TypeScript client against a running stack.

let t: Awaited<ReturnType<typeof startTestStack>>;
let dir: string;
beforeAll(async () => {
  t = await startTestStack("v4-8x2");
  dir = await mkdtemp(join(tmpdir(), "gangway-cli-"));
});
afterAll(async () => {
  await t?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const gangway = (...argv: string[]) => cliAgainst(t.stack, argv);

async function jobFile(name: string, spec: unknown) {
  const path = join(dir, `${name}.json`);
  await writeFile(path, JSON.stringify(spec));
  return path;
}

describe("the CLI", () => {
  it("submits and follows a job, then shows its status, logs and history", async () => {
    const file = await jobFile(
      "ok",
      behaveJob("cli-ok", { kind: "tpu", type: "v4-8", slices: 2 }, [
        "--fail-on-attempt",
        "1",
        "--fail-slice",
        "1",
      ]),
    );
    const sub = await gangway("submit", file, "--wait");
    expect(sub.stderr).toBe("");
    expect(sub.code).toBe(0);
    expect(sub.stdout).toContain("attempt 1: leased");
    expect(sub.stdout).toContain("SUCCEEDED after 2 attempt(s)");
    const jobId = /submitted (\S+)/.exec(sub.stdout)?.[1] ?? "";

    const status = await gangway("status", jobId, "--json");
    expect(JSON.parse(status.stdout)).toMatchObject({
      jobId,
      status: "SUCCEEDED",
      counters: { attempts: 2, failures: 1 },
    });
    expect((await gangway("status", jobId)).stdout).toMatch(/v4-8-\d+\s+0\s+127\.0\.1\.\d+\s+exited/);
    expect((await gangway("status")).stdout).toContain(jobId);

    const logs = await gangway("logs", jobId, "--json");
    expect(logs.code).toBe(0);
    expect(JSON.parse(logs.stdout).hosts).toHaveLength(2);

    const history = await gangway("history", jobId);
    expect(history.stdout).toContain("attempt 1\n");
    expect(history.stdout).toContain("attempt 2\n");
    expect(history.stdout).toContain("DeliberateFailure");
  });

  it("cancels a running job and reports bad input with the right exit codes", async () => {
    const file = await jobFile(
      "long",
      behaveJob("cli-long", { kind: "tpu", type: "v4-8", slices: 1 }, ["--sleep", "30000"]),
    );
    const sub = await gangway("submit", file, "--json");
    const { jobId } = JSON.parse(sub.stdout) as { jobId: string };
    for (let i = 0; i < 200 && (await processesOfJob(jobId)).length === 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    const cancel = await gangway("cancel", jobId, "--wait", "--reason", "enough");
    expect(cancel.stdout).toBe(`${jobId}: CANCELLED\n`);
    expect(await processesOfJob(jobId)).toEqual([]);
    expect((await gangway("cancel", jobId)).code).toBe(1);
    expect((await gangway("status", "no-such-job")).code).toBe(1);
    expect((await gangway("submit", await jobFile("bad", { name: "x" }))).code).toBe(2);
    expect((await gangway("submit")).code).toBe(2);
    for (const cmd of ["submit", "status", "logs", "cancel", "history", "up", "run", "plan"]) {
      expect((await gangway(cmd, "--help")).stdout).toContain(`usage: gangway ${cmd}`);
    }
  });
});

describe("the TypeScript client", () => {
  const tpu = { kind: "tpu" as const, type: "v4-8", slices: 2 };
  const workload = { command: ["node", BEHAVE] };

  it("executes once and returns the JobStatus, through the API", async () => {
    const status = await execute(workload, tpu, {
      connection: { api: t.stack.api, webhookSecret: t.stack.webhookSecret },
      name: "client",
    });
    expect(status).toMatchObject({ status: "SUCCEEDED", counters: { attempts: 1 } });
  });

  it("executes resumably through the SFN client, and throws the user's own error when retries run out", async () => {
    const connection = { sfnEndpoint: t.stack.sfnEndpoint, stateMachineArn: t.stack.stateMachineArn };
    const results = await executeResumable(
      { command: [...workload.command, "--fail-on-attempt", "1"] },
      tpu,
      { connection, name: "resume" },
    );
    expect(results).toHaveLength(2);
    await expect(
      executeResumable({ command: [...workload.command, "--fail-until-attempt", "9"] }, tpu, {
        connection,
        name: "hopeless",
        maxRetriesFailure: 1,
      }),
    ).rejects.toMatchObject({ name: "DeliberateFailure" });
  });

  it("reads results too large for the execution's output from the results store", async () => {
    const connection = { sfnEndpoint: t.stack.sfnEndpoint, stateMachineArn: t.stack.stateMachineArn };
    const large = { command: [...workload.command, "--result-pad", "150000"] };
    const results = (await executeResumable(large, tpu, {
      connection: { ...connection, results: t.store },
      name: "large",
    })) as Array<{ slice: number; pad: string }>;
    expect(results.map((r) => [r.slice, r.pad.length])).toEqual([
      [0, 150_000],
      [1, 150_000],
    ]);
    // Without the store the client says where the results are, rather than returning the reference.
    await expect(executeResumable(large, tpu, { connection, name: "large-blind" })).rejects.toMatchObject({
      name: "ResultsNotFetched",
      message: expect.stringContaining("results store"),
    });
  });

  it("turns a workload into a callable", async () => {
    const run = withExecutor({
      accelerator: tpu,
      connection: { api: t.stack.api, webhookSecret: t.stack.webhookSecret },
      name: "wrapped",
    })(workload);
    expect(await run("--sleep", "10")).toEqual([
      { slice: 0, host: 0, worker: 0, attempt: 1 },
      { slice: 1, host: 0, worker: 1, attempt: 1 },
    ]);
  });
});
