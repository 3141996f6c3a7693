import { PubSub } from "@google-cloud/pubsub";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PREEMPTION_NOTICES_TOPIC } from "../../core/host-event.js";
import { behaveJob, processesOfJob, startTestStack } from "./harness.js";

// Preemption re-enters the machine from a notice published with the official Pub/Sub client;
// a killed workload is a failure; stale notices change nothing; flexible counts fit the cluster.

let t: Awaited<ReturnType<typeof startTestStack>>;
let pubsub: PubSub;
const ran: string[] = [];

beforeAll(async () => {
  t = await startTestStack("v4-16x2,v4-8x3");
  pubsub = new PubSub({
    projectId: t.stack.projectId,
    apiEndpoint: t.stack.pubsubEmulatorHost,
    emulatorMode: true,
  });
});
afterAll(async () => {
  await pubsub?.close();
  await t?.close();
});
afterEach(async () => {
  for (const jobId of ran.splice(0)) expect(await processesOfJob(jobId)).toEqual([]);
});

const notify = (notice: unknown) => pubsub.topic(PREEMPTION_NOTICES_TOPIC).publishMessage({ json: notice });

describe("preemption and failure, end to end", () => {
  it("re-enters the machine on a notice published to Pub/Sub, tearing down every slice", async () => {
    let firstSlices: string[] = [];
    let secondSlices: string[] = [];
    const r = await t.runJob(
      behaveJob("notice", { kind: "tpu", type: "v4-16", slices: 2 }, ["--sleep", "1500"]),
      {
        onRunning: async (attempt, slices) => {
          if (attempt === 2) secondSlices = slices;
          if (attempt !== 1) return;
          firstSlices = slices;
          await notify({ slice: slices[1] });
        },
      },
    );
    ran.push(r.jobId);
    expect(r.status).toBe("SUCCEEDED");
    expect(r.job?.counters).toEqual({ attempts: 2, preemptions: 1, failures: 0 });
    // Both slices were torn down and relaunched: every result comes from attempt 2.
    expect(
      (r.job?.status === "SUCCEEDED" ? (r.job.result as Array<{ attempt: number }>) : []).map(
        (x) => x.attempt,
      ),
    ).toEqual([2, 2, 2, 2]);
    expect(firstSlices).toHaveLength(2);
    // The healthy slice was restarted in place; the preempted one was replaced.
    expect(secondSlices).toContain(firstSlices[0]);
    expect(secondSlices).not.toContain(firstSlices[1]);
    const failed = r.history.find((e) => e.type === "TaskFailed");
    expect(failed?.taskFailedEventDetails?.error).toBe("Preempted");
  });

  it("ignores a stale notice: a slice of another attempt, or an older epoch", async () => {
    let oldSlice = "";
    const r = await t.runJob(
      behaveJob("stale", { kind: "tpu", type: "v4-8", slices: 1 }, ["--sleep", "1500"]),
      {
        onRunning: async (attempt, slices, _jobId) => {
          if (attempt === 1) {
            oldSlice = slices[0] ?? "";
            await t.stack.provider.preemptSlice(oldSlice);
          } else {
            // Attempt 2 runs elsewhere: a late notice for the old slice, and one naming attempt 1.
            await notify({ slice: oldSlice });
            await notify({ slice: slices[0], attempt: 1 });
          }
        },
      },
    );
    ran.push(r.jobId);
    expect(r.status).toBe("SUCCEEDED");
    expect(r.job?.counters).toEqual({ attempts: 2, preemptions: 1, failures: 0 });
  });

  it("counts a killed workload as a failure", async () => {
    const r = await t.runJob(
      behaveJob("killed", { kind: "tpu", type: "v4-8", slices: 1 }, ["--sleep", "20000"], {
        retry: { maxFailures: 0 },
      }),
      {
        onRunning: async (_attempt, _slices, jobId) => {
          let pids: number[] = [];
          for (let i = 0; i < 100 && pids.length === 0; i++) {
            pids = await processesOfJob(jobId);
            if (pids.length === 0) await new Promise((res) => setTimeout(res, 20));
          }
          for (const pid of pids) process.kill(pid, "SIGKILL");
        },
      },
    );
    ran.push(r.jobId);
    expect(r.status).toBe("FAILED");
    expect(r.job).toMatchObject({
      status: "FAILED",
      error: { name: "WorkloadFailed", details: { signal: "SIGKILL" } },
    });
  });

  it("honours retryOnExitCodes: those exits are recovered as preemptions", async () => {
    const r = await t.runJob(
      behaveJob(
        "exitcode",
        { kind: "tpu", type: "v4-8", slices: 1 },
        ["--fail-until-attempt", "3", "--exit-code", "75"],
        {
          retry: { maxFailures: 0, retryOnExitCodes: [75] },
        },
      ),
    );
    ran.push(r.jobId);
    expect(r.status).toBe("SUCCEEDED");
    expect(r.job?.counters).toEqual({ attempts: 3, preemptions: 2, failures: 0 });
  });

  it("runs a flexible [4, 2] job on a cluster of 3 slices on 2 of them", async () => {
    const r = await t.runJob(behaveJob("flex", { kind: "tpu", type: "v4-8", slices: [4, 2] }));
    ran.push(r.jobId);
    expect(r.status).toBe("SUCCEEDED");
    expect(r.job?.status === "SUCCEEDED" && (r.job.result as unknown[]).length).toBe(2);
    expect(r.lines.some((l) => /leased v4-8-\d+, v4-8-\d+ \(2 hosts\)/.test(l))).toBe(true);
  });

  it("keeps a job that outlives its heartbeat period alive on its hosts' heartbeats", async () => {
    const r = await t.runJob(
      behaveJob("long", { kind: "tpu", type: "v4-16", slices: 1 }, ["--sleep", "7000"], {
        timeouts: { heartbeatSeconds: 2 },
      }),
    );
    ran.push(r.jobId);
    expect(r.status).toBe("SUCCEEDED");
    expect(r.job?.counters).toEqual({ attempts: 1, preemptions: 0, failures: 0 });
  });

  it("stops an attempt that outlives attemptSeconds and retries it as a preemption", async () => {
    const r = await t.runJob(
      behaveJob("slow", { kind: "tpu", type: "v4-8", slices: 1 }, ["--first-sleep", "60000"], {
        timeouts: { heartbeatSeconds: 2, attemptSeconds: 4, cancelGraceSeconds: 1 },
      }),
    );
    ran.push(r.jobId);
    expect(r.status).toBe("SUCCEEDED");
    expect(r.job?.counters).toEqual({ attempts: 2, preemptions: 1, failures: 0 });
    expect(r.history.find((e) => e.type === "TaskTimedOut")?.taskTimedOutEventDetails?.error).toBe(
      "States.Timeout",
    );
    expect(r.lines).toContain(
      "attempt 1: AwaitAttempt: States.Timeout (the attempt ran past attemptSeconds)",
    );
  });

  it("rejects an invalid job spec: the execution fails with InvalidJobSpec", async () => {
    const r = await t.runJob({
      name: "bad",
      accelerator: { kind: "tpu", type: "v4-7" },
      workload: { command: ["x"] },
    });
    expect(r.status).toBe("FAILED");
    expect(r.error).toBe("InvalidJobSpec");
  });
});

describe("the console", () => {
  it("shows a job that went through a preemption: graph, timeline by attempt, hosts", async () => {
    const r = await t.runJob(
      behaveJob("console", { kind: "tpu", type: "v4-16", slices: 1 }, ["--sleep", "1000"]),
      {
        onRunning: async (attempt, slices) => {
          if (attempt === 1) await t.stack.provider.preemptSlice(slices[0] ?? "");
        },
      },
    );
    ran.push(r.jobId);
    const list = await (await fetch(`${t.stack.api}/console`)).text();
    expect(list).toContain(`data-job="${r.jobId}"`);
    const res = await fetch(`${t.stack.api}/console/jobs/${r.jobId}`);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('id="job-status">SUCCEEDED<');
    for (const state of ["Init", "ScaleSlices", "AwaitAttempt", "CheckResults", "Teardown", "Succeeded"]) {
      expect(html).toContain(`data-state="${state}" data-visited="true"`);
    }
    expect(html).toContain('data-state="Failed" data-visited="false"');
    expect(html).toContain('data-attempt="1"');
    expect(html).toContain('data-attempt="2"');
    expect(html).toMatch(/data-error="Preempted"><b>Preempted<\/b>: slice v4-16-\d+ preempted/);
    expect(
      html.match(
        /<tr><td>v4-16-\d+<\/td><td>\d<\/td><td>127\.0\.1\.\d+<\/td><td>exited<\/td><td>0<\/td><\/tr>/g,
      ),
    ).toHaveLength(2);
    expect((await fetch(`${t.stack.api}/console/jobs/nope`)).status).toBe(404);
  });
});

describe("a host agent killed with SIGKILL mid-run", () => {
  it("is noticed without any notice and counted as a preemption", async () => {
    let victim = "";
    const r = await t.runJob(
      behaveJob("agentkill", { kind: "tpu", type: "v4-16", slices: 1 }, ["--sleep", "2500"], {
        timeouts: { heartbeatSeconds: 4 },
      }),
      {
        onRunning: async (attempt, slices) => {
          if (attempt !== 1) return;
          const slice = t.stack.provider.listSlices().find((s) => s.name === slices[0]);
          victim = slice?.hosts[1]?.address ?? "";
          await t.stack.provider.killAgent(victim);
        },
        timeoutMs: 90_000,
      },
    );
    ran.push(r.jobId);
    expect(victim).not.toBe("");
    expect(r.status).toBe("SUCCEEDED");
    expect(r.job?.counters).toMatchObject({ preemptions: 1, failures: 0 });
    const failed = r.history.find((e) => e.type === "TaskFailed" || e.type === "TaskTimedOut");
    expect(["LeaseExpired", "HostLost", "States.HeartbeatTimeout"]).toContain(
      failed?.taskFailedEventDetails?.error ?? failed?.taskTimedOutEventDetails?.error,
    );
  });

  it("makes the failure it causes on another slice count as a preemption", async () => {
    // Slice 1's VMs die without a word; slice 0's workload then fails as a broken collective
    // would, well before a heartbeat could be missed. No failure is allowed: only counting
    // the attempt as a preemption lets the job finish.
    const r = await t.runJob(
      behaveJob(
        "wake",
        { kind: "tpu", type: "v4-16", slices: 2 },
        ["--first-sleep", "2500", "--fail-on-attempt", "1", "--fail-slice", "0"],
        { retry: { maxFailures: 0 } },
      ),
      {
        onRunning: async (attempt, slices) => {
          if (attempt !== 1) return;
          const dead = t.stack.provider.listSlices().find((s) => s.name === slices[1]);
          for (const h of dead?.hosts ?? []) await t.stack.provider.killAgent(h.address);
        },
        timeoutMs: 90_000,
      },
    );
    ran.push(r.jobId);
    expect(r.status).toBe("SUCCEEDED");
    expect(r.job?.counters).toEqual({ attempts: 2, preemptions: 1, failures: 0 });
    const failed = r.history.find((e) => e.type === "TaskFailed");
    expect(failed?.taskFailedEventDetails?.error).toBe("DeliberateFailure");
  });
});
