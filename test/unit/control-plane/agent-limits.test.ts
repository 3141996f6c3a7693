import { describe, expect, it } from "vitest";
import {
  agentHeartbeatMs,
  MAX_CANCEL_GRACE_SECONDS,
  MAX_HEARTBEAT_SECONDS,
  parseJobSpec,
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
});
