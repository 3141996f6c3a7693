import { resolve } from "node:path";
import type { Hono } from "hono";
import { classifyAttempt } from "../../core/classification.js";
import { computeHostEnvironments } from "../../core/env-contract.js";
import { HostUnreachable, InternalError, Preempted, WorkloadStartFailed } from "../../core/errors.js";
import { agentHeartbeatMs } from "../../core/job-spec.js";
import { firstScaleUpAt } from "../../core/scale-up.js";
import {
  deserializeError,
  type SerializedError,
  SerializedErrorSchema,
  serializeError,
} from "../../core/serialized-error.js";
import { attemptStore } from "../attempts.js";
import { stopIfCancelled } from "../cancellation.js";
import { type ControlPlaneDeps, FAN_OUT, HISTORY_COST, mapLimit } from "../deps.js";
import { leaseTtlMs } from "../scale-slices/index.js";
import {
  awaitTimeoutSeconds,
  type ExecutionState,
  ExecutionStateSchema,
  leaseIdOf,
  unitKeyOf,
} from "../state.js";
import { createStepApp } from "../step-app.js";

/** gRPC status codes the agent answers (numbers, so functions need no gRPC import). */
const UNAVAILABLE = 14;
const DEADLINE_EXCEEDED = 4;
const FAILED_PRECONDITION = 9;

function parseErrorJson(text: string): SerializedError | undefined {
  if (!text) return undefined;
  try {
    const r = SerializedErrorSchema.safeParse(JSON.parse(text));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/** What a failed Run call means: the host is gone (preempted), or the workload could not start. */
function classifyRunFailure(where: Record<string, unknown>, thrown: unknown): SerializedError {
  const code = (thrown as { code?: unknown }).code;
  const cause = serializeError(thrown);
  if (code === UNAVAILABLE || code === DEADLINE_EXCEEDED) {
    return serializeError(
      new HostUnreachable(`host unreachable at launch: ${cause.message}`, where, {
        cause: deserializeError(cause),
      }),
    );
  }
  const remote = (thrown as { remote?: { name?: unknown } }).remote;
  if (code === FAILED_PRECONDITION && remote?.name === "HostNotClean") {
    // Processes there outlived SIGKILL: the host is broken like a preempted one (given back).
    return serializeError(
      new Preempted(`host not clean at launch: ${cause.message}`, where, { cause: deserializeError(cause) }),
    );
  }
  if (code === FAILED_PRECONDITION) {
    return serializeError(
      new Preempted(`lease lost before launch: ${cause.message}`, where, { cause: deserializeError(cause) }),
    );
  }
  return serializeError(
    new InternalError(`launch failed: ${cause.message}`, where, { cause: deserializeError(cause) }),
  );
}

/**
 * LaunchHosts: start the workload on every host under the attempt's epoch, each with its
 * environment computed afresh. A host that cannot start is classified (unreachable → preempted,
 * lease lost → preempted, bad command → failed), never ignored: the attempt ends with it.
 */
export function createLaunchHosts(
  deps: Pick<ControlPlaneDeps, "agents" | "store" | "clock" | "workloadCwd">,
) {
  const attempts = attemptStore(deps.store);
  return async (state: ExecutionState): Promise<ExecutionState> => {
    await stopIfCancelled(attempts, state.jobId);
    const placement = state.placement;
    if (!placement) throw new InternalError("LaunchHosts before PreparePlacement");
    const ctx = { jobId: state.jobId, attempt: state.attempt };
    const envs = computeHostEnvironments(state.job, placement, ctx);
    const leaseId = leaseIdOf(state.jobId, state.attempt);
    const graceMs = state.job.timeouts.cancelGraceSeconds * 1000;
    // A few heartbeats per period, so one lost event never makes a healthy host look silent.
    const heartbeatMs = agentHeartbeatMs(state.job.timeouts.heartbeatSeconds);
    const peers = new Map(
      placement.slices.map((s) => [s.index, s.hosts.flatMap((h) => (h.agent ? [h.agent] : []))]),
    );
    const kept = new Set(state.scale?.kept?.units ?? []);
    const takeOverTtlMs = leaseTtlMs(state.job);
    const kind = state.job.accelerator.kind;
    const jobCwd = state.job.workload.cwd;
    const cwd = deps.workloadCwd ? resolve(deps.workloadCwd, jobCwd ?? ".") : jobCwd;
    await attempts.setCurrent(state.jobId, {
      attempt: state.attempt,
      executionArn: state.executionArn,
      state: "running",
      updatedAt: deps.clock.now(),
    });
    const failures = (
      await mapLimit(envs, FAN_OUT, async (host): Promise<SerializedError | undefined> => {
        const where = {
          slice: host.sliceName,
          sliceIndex: host.sliceIndex,
          hostIndex: host.hostIndex,
          address: host.address,
        };
        if (!host.agent) return serializeError(new HostUnreachable("no agent address", where));
        try {
          const reply = await deps.agents.agent(host.agent).run({
            leaseId,
            epoch: state.attempt,
            jobId: state.jobId,
            attempt: state.attempt,
            sliceIndex: host.sliceIndex,
            sliceName: host.sliceName,
            hostIndex: host.hostIndex,
            argv: state.job.workload.command,
            env: host.env,
            ...(cwd ? { cwd } : {}),
            graceMs,
            heartbeatMs,
            // The slice head watches its peers: a host that vanishes silently is reported lost.
            slicePeers:
              host.hostIndex === 0 ? (peers.get(host.sliceIndex) ?? []).filter((a) => a !== host.agent) : [],
            // An in-place restart: the host still holds this job's older lease, taken over here.
            ...(kept.has(unitKeyOf(kind, host.sliceName, host.address)) ? { takeOverTtlMs } : {}),
          });
          if (reply.started || reply.alreadyRunning) return undefined;
          const remote = parseErrorJson(reply.errorJson);
          return serializeError(
            new WorkloadStartFailed(remote?.message ?? "the workload did not start", where, {
              cause: remote ? deserializeError(remote) : undefined,
            }),
          );
        } catch (e) {
          return classifyRunFailure(where, e);
        }
      })
    ).filter((f): f is SerializedError => f !== undefined);
    if (failures.length > 0) {
      const verdict = classifyAttempt(failures.map((error) => ({ error })));
      throw deserializeError(
        verdict.problem ?? failures[0] ?? { name: "InternalError", message: "launch failed" },
      );
    }
    // The attempt's clock starts now: its time limit, and when it first looks for more slices.
    const launchedAt = deps.clock.now();
    const running = {
      launchedAt,
      scaleUpAt: firstScaleUpAt(state.job, placement.slices.length, launchedAt),
      checks: 0,
      resume: false,
    };
    return {
      ...state,
      running,
      awaitTimeoutSeconds: awaitTimeoutSeconds(state.job, running, launchedAt),
      history: { ...state.history, events: state.history.events + HISTORY_COST.task },
    };
  };
}

/** The LaunchHosts step as a Hono app. */
export function createLaunchHostsApp(
  deps: Pick<ControlPlaneDeps, "agents" | "store" | "clock" | "workloadCwd">,
): Hono {
  return createStepApp({
    name: "launch-hosts",
    input: ExecutionStateSchema,
    handle: createLaunchHosts(deps),
  });
}
