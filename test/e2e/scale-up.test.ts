import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { behaveJob, processesOfJob, startTestStack } from "./harness.js";

// A flexible job grows while it runs (Levanter's flex multislice scale-up), through the embedded
// engine: AwaitAttempt's timeout → CheckScaleUp → back to AwaitAttempt, or ScaleUp → a restart on
// more slices that raises no counter.

let t: Awaited<ReturnType<typeof startTestStack>>;
let capped: Awaited<ReturnType<typeof startTestStack>>;
const ran: string[] = [];

beforeAll(async () => {
  // One v4-8 slice at first; the local autoscaler brings up more when asked (in `capped`, never).
  [t, capped] = await Promise.all([
    startTestStack("v4-8x1", { provisioningDelayMs: 300 }),
    startTestStack("v4-8x1", { quota: { maxSlices: { "v4-8": 1 } } }),
  ]);
});
afterAll(async () => {
  await Promise.all([t?.close(), capped?.close()]);
});
afterEach(async () => {
  for (const jobId of ran.splice(0)) expect(await processesOfJob(jobId)).toEqual([]);
});

describe("scale-up of a running flexible job", () => {
  it("restarts a [2, 1] job running on 1 slice on 2 once the second is up, raising no counter", async () => {
    const r = await t.runJob(
      behaveJob("grow", { kind: "tpu", type: "v4-8", slices: [2, 1] }, ["--first-sleep", "60000"], {
        timeouts: { heartbeatSeconds: 2, cancelGraceSeconds: 1 },
        scaleUp: { afterSeconds: 1 },
      }),
    );
    ran.push(r.jobId);
    expect(r.status).toBe("SUCCEEDED");
    expect(r.job?.counters).toEqual({ attempts: 2, preemptions: 0, failures: 0, scaledUp: 1 });
    expect(r.job?.status === "SUCCEEDED" && (r.job.result as unknown[]).length).toBe(2);
    const entered = r.history.flatMap((e) =>
      e.stateEnteredEventDetails ? [e.stateEnteredEventDetails.name] : [],
    );
    expect(entered).toContain("CheckScaleUp");
    expect(r.lines).toContain("attempt 1: ScaleUp: growing from 1 to 2 slices: 1 more can be had");
    expect(r.lines).toContain("attempt 1: scaling up — all slices torn down, going again on more");
  });

  it("with no more slices to be had, looks, goes back to waiting on a new token, and ends as usual", async () => {
    const r = await capped.runJob(
      behaveJob("look", { kind: "tpu", type: "v4-8", slices: [2, 1] }, ["--sleep", "5000"], {
        timeouts: { heartbeatSeconds: 2, cancelGraceSeconds: 1 },
        scaleUp: { afterSeconds: 1 },
      }),
    );
    ran.push(r.jobId);
    expect(r.status).toBe("SUCCEEDED");
    expect(r.job?.counters).toEqual({ attempts: 1, preemptions: 0, failures: 0 });
    expect(r.lines).toContain("attempt 1: looked for more slices: none to be had yet; the autoscaler asked");
    const entered = r.history.flatMap((e) =>
      e.stateEnteredEventDetails ? [e.stateEnteredEventDetails.name] : [],
    );
    expect(entered.filter((n) => n === "AwaitAttempt")).toHaveLength(2);
  });
});
