import { describe, expect, it } from "vitest";
import { CONTRACT_VARIABLES } from "../../../core/env-names.js";
import {
  agentHeartbeatMs,
  MAX_CANCEL_GRACE_SECONDS,
  MAX_ENV_ENTRIES,
  MAX_HEARTBEAT_SECONDS,
  parseJobSpec,
  safeParseJobSpec,
} from "../../../core/job-spec.js";
import {
  AcquireLeaseSchema,
  CancelSchema,
  ReleaseLeaseSchema,
  RenewLeaseSchema,
  RunSchema,
} from "../../../functions/clients/agent/messages.js";
import { leaseTtlMs } from "../../../functions/scale-slices/index.js";
import { spec } from "./harness.js";

describe("the agents' request limits", () => {
  it("accept what the longest heartbeat and grace a job may give ask of them", () => {
    const job = parseJobSpec(
      spec({
        timeouts: { heartbeatSeconds: MAX_HEARTBEAT_SECONDS, cancelGraceSeconds: MAX_CANCEL_GRACE_SECONDS },
      }),
    );
    const lease = { leaseId: "train-1#1", epoch: 1 };
    const ttlMs = leaseTtlMs(job);
    const graceMs = job.timeouts.cancelGraceSeconds * 1000;
    const checks = [
      AcquireLeaseSchema.safeParse({ ...lease, jobId: "train-1", ttlMs }),
      RenewLeaseSchema.safeParse({ ...lease, ttlMs }),
      CancelSchema.safeParse({ ...lease, graceMs }),
      ReleaseLeaseSchema.safeParse({ ...lease, graceMs }),
      RunSchema.safeParse({
        ...lease,
        jobId: "train-1",
        attempt: 1,
        sliceIndex: 0,
        sliceName: "v4-16-0",
        hostIndex: 0,
        argv: ["python3", "train.py"],
        env: {},
        cwd: "",
        graceMs,
        slicePeers: [],
        heartbeatMs: agentHeartbeatMs(job.timeouts.heartbeatSeconds),
        takeOverTtlMs: ttlMs,
      }),
    ];
    for (const c of checks) expect(c.error?.issues ?? []).toEqual([]);
  });

  // A run as LaunchHosts sends it: the job's argv, its env plus gangway's own, its directory.
  const run = (workload: { command: string[]; env?: Record<string, string>; cwd?: string }) =>
    RunSchema.safeParse({
      leaseId: "train-1#1",
      epoch: 1,
      jobId: "train-1",
      attempt: 1,
      sliceIndex: 0,
      sliceName: "v4-16-0",
      hostIndex: 0,
      argv: workload.command,
      env: { ...workload.env, ...Object.fromEntries(CONTRACT_VARIABLES.map((v) => [v, "1"])) },
      cwd: workload.cwd ?? "",
      graceMs: 30_000,
    });
  const variables = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`V${i}`, ""]));

  it.each([
    ["a NUL in an argument", { command: ["python3", "a\0b"] }, "workload.command[1]"],
    ["a NUL in an env value", { command: ["x"], env: { DATA: "\0" } }, "workload.env.DATA"],
    ["a NUL in the directory", { command: ["x"], cwd: "/srv\0" }, "workload.cwd"],
    [
      "more variables than fit beside gangway's",
      { command: ["x"], env: variables(MAX_ENV_ENTRIES + 1) },
      "workload.env",
    ],
  ])("are matched by the job spec: %s", (_what, workload, path) => {
    const spec = { name: "train", accelerator: { kind: "cpu" }, workload };

    const submitted = safeParseJobSpec(spec);
    const launched = run(workload);

    expect(submitted.success ? [] : submitted.issues.map((i) => i.path)).toContain(path);
    expect(launched.success).toBe(false);
  });

  it("take a run of a job with as many variables as a spec may hold, beside every contract variable", () => {
    const workload = { command: ["x"], env: variables(MAX_ENV_ENTRIES) };

    const launched = run(workload);

    expect(launched.error?.issues ?? []).toEqual([]);
  });
});
