import { GangwayError } from "../../../core/errors.js";

/**
 * A command that does not match the host's lease: another lease holds the host, the command's
 * attempt epoch is older than the lease's, or nothing is leased. Answered `FAILED_PRECONDITION`,
 * so a stale retry can never touch a newer attempt.
 */
export class LeaseConflict extends GangwayError {
  override readonly name = "LeaseConflict";
}

/**
 * Processes of an earlier run on the host outlived SIGKILL (stuck in uninterruptible I/O, say):
 * the host takes no new lease and starts no run until they are gone. Answered `FAILED_PRECONDITION`.
 */
export class HostNotClean extends GangwayError {
  override readonly name = "HostNotClean";
}

/**
 * The run a request names (job, attempt) is not the host's current one: the host never ran it,
 * or has moved on to another. Answered `NOT_FOUND`, without saying what the host runs now.
 */
export class RunNotFound extends GangwayError {
  override readonly name = "RunNotFound";
}

/** A request that does not parse (field path, expected, got). Answered `INVALID_ARGUMENT`. */
export class InvalidAgentRequest extends GangwayError {
  override readonly name = "InvalidAgentRequest";
}

/** A call without `authorization: Bearer <token>`, or with the wrong token. `UNAUTHENTICATED`. */
export class AgentUnauthenticated extends GangwayError {
  override readonly name = "AgentUnauthenticated";
}

/** The agent is shutting down (or its host was preempted away). Answered `UNAVAILABLE`. */
export class AgentStopping extends GangwayError {
  override readonly name = "AgentStopping";
}
