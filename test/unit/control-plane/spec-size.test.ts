import { describe, expect, it } from "vitest";
import type { ClusterSlice } from "../../../core/cluster-spec.js";
import { MAX_JOB_SPEC_BYTES, parseJobSpec } from "../../../core/job-spec.js";
import { createAwaitAttempt } from "../../../functions/await-attempt/index.js";
import { createCheckResults } from "../../../functions/check-results/index.js";
import { createIngest } from "../../../functions/ingest/events.js";
import { createInit } from "../../../functions/init/index.js";
import { createLaunchHosts } from "../../../functions/launch-hosts/index.js";
import { createPreparePlacement } from "../../../functions/prepare-placement/index.js";
import { createScaleSlices } from "../../../functions/scale-slices/index.js";
import type { ExecutionState } from "../../../functions/state.js";
import { createTeardown } from "../../../functions/teardown/index.js";
import { FakeAgent, fakeWorld } from "./fakes.js";
import { hugeWorkloadError } from "./harness.js";

// The job spec rides in every state beside the attempt's host tables: at its largest, with 1,024
// hosts, every state must still fit Step Functions' 256 KiB (MAX_JOB_SPEC_BYTES explains the figure).
const LIMIT = 256 * 1024;
const size = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

const execution = {
  Id: "arn:aws:states:us-east-1:123456789012:execution:gangway-multislice:big-0123456789ab",
  Name: "big-0123456789ab",
};

/** A 1,024-host spec (256 × v4-32) whose JSON, defaults filled in, is exactly MAX_JOB_SPEC_BYTES. */
function largestSpec() {
  const spec = {
    name: "big",
    accelerator: { kind: "tpu", type: "v4-32", slices: 256 },
    workload: { command: ["python3", "train.py"], env: { PAD: "" } },
    retry: { maxPreemptions: 1, maxFailures: 1 },
  };
  spec.workload.env.PAD = "x".repeat(MAX_JOB_SPEC_BYTES - size(parseJobSpec(spec)));
  return spec;
}

/** The local provider's slices renamed as a cloud names them: 10.x.y.z, agents on :50051, a zone. */
function cloudNames(world: ReturnType<typeof fakeWorld>): ClusterSlice[] {
  return world.cluster.map((s, i) => ({
    ...s,
    name: `gangway-train-pool-v4-32-${String(i).padStart(4, "0")}`,
    zone: "us-central2-b",
    hosts: s.hosts.map((h, j) => {
      const address = `10.${130 + (i % 100)}.${100 + (i % 155)}.${200 + j}`;
      const agent = `${address}:50051`;
      world.agents.set(agent, new FakeAgent(address));
      return { ...h, address, agent };
    }),
  }));
}

// A workload's error file of ~200 KB, on every attempt: each error the state keeps is at its largest.
const hugeError = hugeWorkloadError;

describe("the largest job spec at 1,024 hosts", () => {
  it.each([
    ["the local provider's", false],
    ["cloud-length", true],
  ])(
    "keeps every state under 256 KiB through a preemption, failures and the stop, with %s names",
    async (_what, cloud) => {
      const world = fakeWorld("v4-32x256");
      if (cloud) world.setCluster(cloudNames(world));
      const d = world.deps;
      const sizes: Record<string, number> = {};
      const seen = (step: string, state: ExecutionState) => {
        sizes[`${step}#${state.attempt}`] = size(state);
        return state;
      };

      let state = seen("init", await createInit(d)({ input: largestSpec(), execution }));
      for (const end of ["preempted", "failed", "failed"]) {
        state = seen("scale", await createScaleSlices(d)(state));
        state = seen("prepare", await createPreparePlacement(d)(state));
        state = seen("launch", await createLaunchHosts(d)(state));
        expect(state.placement?.slices.flatMap((s) => s.hosts)).toHaveLength(1024);
        await createAwaitAttempt(d)({ token: `t${state.attempt}`, state });
        const host = state.placement?.slices[3]?.hosts[1];
        await createIngest(d).hostEvent({
          version: 1,
          kind: "exited",
          eventId: `${state.attempt}-3-1`,
          at: 1,
          agent: host?.agent ?? "",
          address: host?.address ?? "",
          jobId: execution.Name,
          attempt: state.attempt,
          sliceIndex: 3,
          hostIndex: 1,
          exitCode: 1,
          error: hugeError,
          metadataPreempted: end === "preempted",
        });
        const failure = world.sent.at(-1);
        state = seen("caught", { ...state, problem: { Error: failure?.error ?? "", Cause: failure?.cause } });
        state = seen("check", await createCheckResults(d)(state));
        state = seen("teardown", await createTeardown(d)(state));
      }

      expect(size(state.job)).toBe(MAX_JOB_SPEC_BYTES);
      expect(state.decision).toMatchObject({ action: "stop", status: "FAILED" });
      for (const [step, bytes] of Object.entries(sizes)) expect(bytes, step).toBeLessThan(LIMIT);
    },
  );
});
