import { registerErrorClass } from "./serialized-error.js";
import type { ValidationIssue } from "./validation.js";

/**
 * Base of every error gangway raises on purpose. `name` is the error's identity: the state
 * machine's Retry/Catch match on it, and it survives serialization. `details` carries the facts
 * (JSON values) a reader or a classifier needs.
 */
export abstract class GangwayError extends Error {
  abstract override readonly name: string;
  readonly details: Record<string, unknown>;

  constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.details = details;
  }
}

/** A job spec (or any edge's input) that does not parse; `issues` lists every problem. */
export class InvalidJobSpec extends GangwayError {
  override readonly name = "InvalidJobSpec";
  readonly issues: ValidationIssue[];
  constructor(issues: ValidationIssue[], what = "job spec") {
    super(`invalid ${what}:\n${issues.map((i) => `  ${i.message}`).join("\n")}`, { issues });
    this.issues = issues;
  }
}

/** An accelerator type that is not in the catalog, e.g. `v4-7`. */
export class UnknownAcceleratorType extends GangwayError {
  override readonly name = "UnknownAcceleratorType";
}

/** Fewer slices (or hosts) can be had than the job needs. Counted as a preemption. */
export class InsufficientSlices extends GangwayError {
  override readonly name = "InsufficientSlices";
  constructor(
    readonly wanted: readonly number[],
    readonly available: number,
    readonly acceleratorType: string,
    unit = "slices",
  ) {
    const want = wanted.length === 1 ? `${wanted[0]}` : `one of [${wanted.join(", ")}]`;
    super(`insufficient ${unit} of ${acceleratorType}: wanted ${want}, available ${available}`, {
      wanted: [...wanted],
      available,
      acceleratorType,
      unit,
    });
  }
}

/** A host's agent could not be reached, or stopped answering. Infrastructure loss: preempted. */
export class HostUnreachable extends GangwayError {
  override readonly name = "HostUnreachable";
}

/**
 * A slice is not whole or not healthy (a host missing, two workers on one host …) before the
 * workload started. The attempt is abandoned and retried without raising a counter (FACTS.md).
 */
export class SliceUnhealthy extends GangwayError {
  override readonly name = "SliceUnhealthy";
}

/** A slice or host was preempted (notice, metadata endpoint, or vanished VM). */
export class Preempted extends GangwayError {
  override readonly name = "Preempted";
}

/** The workload exited non-zero or was killed by a signal. The user's failure, normally. */
export class WorkloadFailed extends GangwayError {
  override readonly name = "WorkloadFailed";
}

/** The workload could not be started on a host (missing command, bad cwd …). */
export class WorkloadStartFailed extends GangwayError {
  override readonly name = "WorkloadStartFailed";
}

/** An attempt, or a step of it, ran past its time limit. Counted as a preemption (FACTS.md). */
export class AttemptTimedOut extends GangwayError {
  override readonly name = "AttemptTimedOut";
}

/** A workload's result file is larger than the cap; never truncated silently. */
export class ResultTooLarge extends GangwayError {
  override readonly name = "ResultTooLarge";
}

/** The preemption budget is spent: the job stops as PREEMPTED with the last preemption as cause. */
export class PreemptedTooManyTimes extends GangwayError {
  override readonly name = "PreemptedTooManyTimes";
}

/** Attempt after attempt was abandoned on unhealthy slices: the job stops as ERROR. */
export class UnhealthyTooManyTimes extends GangwayError {
  override readonly name = "UnhealthyTooManyTimes";
}

/**
 * A flexible job's attempt is ended on purpose to restart on more slices (Levanter's flex
 * multislice scale-up). Raises no counter.
 */
export class ScaleUp extends GangwayError {
  override readonly name = "ScaleUp";
}

/** The job was cancelled by a user. */
export class JobCancelled extends GangwayError {
  override readonly name = "JobCancelled";
}

/** A fault of gangway's own runtime (not of the workload, not of the infrastructure). */
export class InternalError extends GangwayError {
  override readonly name = "InternalError";
}

// Explicit names, not `ctor.name`: bundlers may rename classes, the wire names must not change.
const registered: Array<[string, unknown]> = [
  ["InvalidJobSpec", InvalidJobSpec],
  ["UnknownAcceleratorType", UnknownAcceleratorType],
  ["InsufficientSlices", InsufficientSlices],
  ["HostUnreachable", HostUnreachable],
  ["Preempted", Preempted],
  ["SliceUnhealthy", SliceUnhealthy],
  ["WorkloadFailed", WorkloadFailed],
  ["WorkloadStartFailed", WorkloadStartFailed],
  ["AttemptTimedOut", AttemptTimedOut],
  ["ResultTooLarge", ResultTooLarge],
  ["PreemptedTooManyTimes", PreemptedTooManyTimes],
  ["UnhealthyTooManyTimes", UnhealthyTooManyTimes],
  ["ScaleUp", ScaleUp],
  ["JobCancelled", JobCancelled],
  ["InternalError", InternalError],
];
for (const [name, ctor] of registered) registerErrorClass(name, ctor as new (message: string) => Error);
