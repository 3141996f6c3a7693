import { describe, expect, it } from "vitest";
import { createAwaitAttempt } from "../../../functions/await-attempt/index.js";
import { createIngestApp, noticeFrom } from "../../../functions/ingest/index.js";
import { createInit } from "../../../functions/init/index.js";
import { createLaunchHosts } from "../../../functions/launch-hosts/index.js";
import { createPreparePlacement } from "../../../functions/prepare-placement/index.js";
import { createScaleSlices } from "../../../functions/scale-slices/index.js";
import { fakeWorld } from "./fakes.js";

// A Compute Engine preemption as Cloud Logging writes it to the System Event audit log and a log
// sink publishes it (the LogEntry as JSON in the message data). Written by hand after Google's
// documented LogEntry and AuditLog formats; the values are made up.
function preemptedEntry(instance: string, overrides: Record<string, unknown> = {}) {
  return {
    protoPayload: {
      "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
      status: { message: "Instance was preempted." },
      authenticationInfo: { principalEmail: "system@google.com" },
      serviceName: "compute.googleapis.com",
      methodName: "compute.instances.preempted",
      resourceName: `projects/ml-prod/zones/us-central2-b/instances/${instance}`,
      request: { "@type": "type.googleapis.com/compute.instances.preempted" },
    },
    insertId: "-x1y2z3c4d5e",
    resource: {
      type: "gce_instance",
      labels: { instance_id: "4412345678901234567", project_id: "ml-prod", zone: "us-central2-b" },
    },
    timestamp: "2026-03-02T07:14:09.512345Z",
    severity: "INFO",
    logName: "projects/ml-prod/logs/cloudaudit.googleapis.com%2Fsystem_event",
    operation: {
      id: "systemevent-1772435649512-61c1d2e3f4a5b-6c7d8e9f-0a1b2c3d",
      producer: "compute.instances.preempted",
      first: true,
      last: true,
    },
    receiveTimestamp: "2026-03-02T07:14:10.223344556Z",
    ...overrides,
  };
}

describe("a Cloud Logging entry of a Compute Engine preemption as a notice", () => {
  it("names the preempted instance as the host address, with where and when in the reason", () => {
    expect(noticeFrom(preemptedEntry("gpu-train-0"))).toEqual({
      address: "gpu-train-0",
      at: Date.parse("2026-03-02T07:14:09.512345Z"),
      reason:
        "Compute Engine preempted projects/ml-prod/zones/us-central2-b/instances/gpu-train-0 at 2026-03-02T07:14:09.512345Z",
    });
  });

  it("ignores other log entries, and says why", () => {
    const stop = preemptedEntry("gpu-train-0");
    stop.protoPayload.methodName = "v1.compute.instances.stop";
    expect(noticeFrom(stop)).toBe("log entry of v1.compute.instances.stop is not a preemption");
    const disk = preemptedEntry("x");
    disk.protoPayload.resourceName = "projects/ml-prod/zones/us-central2-b/disks/data-1";
    expect(noticeFrom(disk)).toBe(
      "log entry names projects/ml-prod/zones/us-central2-b/disks/data-1, not a Compute Engine instance",
    );
    expect(noticeFrom(preemptedEntry("Not_A_VM_Name"))).toContain("not a Compute Engine instance");
    expect(noticeFrom({ protoPayload: "x" })).toBe(
      'malformed log entry: protoPayload: expected object, got string "x"',
    );
    expect(noticeFrom({ protoPayload: { methodName: 7 } })).toBe(
      "malformed log entry: protoPayload.methodName: expected string, got integer 7; protoPayload.resourceName: expected string, got nothing",
    );
  });

  it("leaves plain notices and agents' preempted events as they were", () => {
    expect(noticeFrom({ slice: "pod-a", reason: "spot" })).toEqual({ slice: "pod-a", reason: "spot" });
    expect(
      noticeFrom({
        version: 1,
        kind: "preempted",
        eventId: "e1",
        at: 1,
        agent: "a",
        address: "10.0.0.2",
        jobId: "j",
        attempt: 2,
      }),
    ).toMatchObject({ address: "10.0.0.2", jobId: "j", attempt: 2 });
  });

  it("preempts the attempt running on that instance when pushed to the ingest app", async () => {
    // Hosts addressed by their instance names, as a static inventory of GCE VMs may list them.
    const world = fakeWorld("v4-16x2");
    world.setCluster(
      world.cluster.map((s, si) => ({
        ...s,
        hosts: s.hosts.map((h, hi) => ({ ...h, address: `tpu-worker-${si}-${hi}` })),
      })),
    );
    const d = world.deps;
    const execution = {
      Id: "arn:aws:states:us-east-1:000000000000:execution:gangway-multislice:t",
      Name: "t",
    };
    const input = {
      name: "train",
      accelerator: { kind: "tpu", type: "v4-16", slices: 2 },
      workload: { command: ["python3", "train.py"] },
    };
    let state = await createInit(d)({ input, execution, stateMachine: { Id: "arn:sm" } });
    state = await createScaleSlices(d)(state);
    state = await createPreparePlacement(d)(state);
    state = await createLaunchHosts(d)(state);
    await createAwaitAttempt(d)({ token: "tok-1", state });

    const app = createIngestApp(d);
    let pushes = 0;
    const pushEntry = async (entry: unknown) => {
      const body = {
        message: {
          data: Buffer.from(JSON.stringify(entry)).toString("base64"),
          attributes: { "logging.googleapis.com/timestamp": "2026-03-02T07:14:09.512345Z" },
          messageId: `m-${++pushes}`,
        },
        subscription: "projects/ml-prod/subscriptions/gangway-preemption-notices-push",
      };
      const res = await app.request("/push/preemption-notices", {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "content-type": "application/json" },
      });
      expect(res.status).toBe(200);
      return res.json();
    };
    expect(await pushEntry(preemptedEntry("some-other-vm"))).toMatchObject({
      action: "ignored",
      reason: "host some-other-vm is not part of any attempt",
    });
    expect(world.sent).toEqual([]);
    expect(await pushEntry(preemptedEntry("tpu-worker-1-1"))).toMatchObject({
      action: "decided",
      outcome: "Preempted",
    });
    expect(world.sent).toMatchObject([{ kind: "fail", token: "tok-1", error: "Preempted" }]);
  });
});
