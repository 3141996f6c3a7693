import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack } from "./harness.js";

// `GET /v1/jobs/:id/logs` reads the hosts' output tails from their agents. A host keeps only its
// current run's: once another job runs there, the first job's logs must not show the second's.

let t: Awaited<ReturnType<typeof startTestStack>>;
beforeAll(async () => {
  t = await startTestStack("v4-8x1");
});
afterAll(async () => {
  await t?.close();
});

const job = (name: string, script: string) => ({
  name,
  accelerator: { kind: "tpu", type: "v4-8", slices: 1 },
  workload: { command: ["sh", "-c", script] },
  timeouts: { heartbeatSeconds: 30, cancelGraceSeconds: 1 },
});

interface Logs {
  hosts: Array<{ stdout?: string; error?: string }>;
}
const logsOf = async (jobId: string) =>
  (await (await fetch(`${t.stack.api}/v1/jobs/${jobId}/logs`)).json()) as Logs;

describe("job logs", () => {
  it("shows a job its own output, never that of the job that ran on its host after it", async () => {
    const first = await t.runJob(job("first", "echo from-first"));
    expect(first.status).toBe("SUCCEEDED");
    expect((await logsOf(first.jobId)).hosts[0]?.stdout).toBe("from-first\n");
    const second = await t.runJob(job("second", "echo from-second"));
    expect(second.status).toBe("SUCCEEDED");
    expect((await logsOf(second.jobId)).hosts[0]?.stdout).toBe("from-second\n");
    const again = await logsOf(first.jobId);
    expect(again.hosts).toHaveLength(1);
    expect(again.hosts[0]?.stdout).toBeUndefined();
    expect(again.hosts[0]?.error).toMatch(/no output of job .* on this host/);
    expect(JSON.stringify(again)).not.toContain("from-second");
  });
});
