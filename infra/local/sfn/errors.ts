/**
 * Errors of the embedded Step Functions engine. Two families:
 * - `SfnApiError`: what the API answers (AWS JSON 1.0 shape: `__type`, `message`, HTTP 400);
 * - `StatesError`: an error raised inside an execution, matched by Retry/Catch on its `name`.
 */

/** An API error answered as `{"__type": name, "message": …}` with HTTP 400. */
export class SfnApiError extends Error {
  override readonly name: string;
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** Named error helpers, spelled as AWS spells them. */
export const apiErrors = {
  invalidArn: (m: string) => new SfnApiError("InvalidArn", m),
  invalidName: (m: string) => new SfnApiError("InvalidName", m),
  invalidDefinition: (m: string) => new SfnApiError("InvalidDefinition", m),
  invalidExecutionInput: (m: string) => new SfnApiError("InvalidExecutionInput", m),
  invalidOutput: (m: string) => new SfnApiError("InvalidOutput", m),
  invalidToken: (m: string) => new SfnApiError("InvalidToken", m),
  taskDoesNotExist: (m: string) => new SfnApiError("TaskDoesNotExist", m),
  taskTimedOut: (m: string) => new SfnApiError("TaskTimedOut", m),
  stateMachineDoesNotExist: (m: string) => new SfnApiError("StateMachineDoesNotExist", m),
  stateMachineAlreadyExists: (m: string) => new SfnApiError("StateMachineAlreadyExists", m),
  executionDoesNotExist: (m: string) => new SfnApiError("ExecutionDoesNotExist", m),
  executionAlreadyExists: (m: string) => new SfnApiError("ExecutionAlreadyExists", m),
  validation: (m: string) => new SfnApiError("ValidationException", m),
  unknownOperation: (m: string) => new SfnApiError("UnknownOperationException", m),
  serialization: (m: string) => new SfnApiError("SerializationException", m),
  missingParameter: (m: string) => new SfnApiError("MissingRequiredParameter", m),
};

/** An error inside an execution: `name` is the ASL error name (`States.Timeout`, `HostUnreachable` …). */
export class StatesError extends Error {
  override readonly name: string;
  /** The ASL `Cause` (may be empty). */
  override readonly cause: string | undefined;
  constructor(name: string, cause?: string) {
    super(cause ?? name);
    this.name = name;
    this.cause = cause;
  }
}

/** `States.Runtime`: not retriable, not caught by `States.ALL`; the execution fails. */
export function runtimeError(stateName: string, enteredEventId: number, message: string): StatesError {
  return new StatesError(
    "States.Runtime",
    `An error occurred while executing the state '${stateName}' (entered at the event id #${enteredEventId}). ${message}`,
  );
}

/** Error names with meaning to the language (predefined by the States Language). */
export const STATES = {
  all: "States.ALL",
  runtime: "States.Runtime",
  timeout: "States.Timeout",
  heartbeatTimeout: "States.HeartbeatTimeout",
  taskFailed: "States.TaskFailed",
  dataLimitExceeded: "States.DataLimitExceeded",
  noChoiceMatched: "States.NoChoiceMatched",
  intrinsicFailure: "States.IntrinsicFailure",
  resultPathMatchFailure: "States.ResultPathMatchFailure",
  parameterPathFailure: "States.ParameterPathFailure",
  branchFailed: "States.BranchFailed",
  exceedToleratedFailureThreshold: "States.ExceedToleratedFailureThreshold",
  permissions: "States.Permissions",
} as const;

/**
 * Does a Retry/Catch `ErrorEquals` list match `error`? `States.ALL` matches everything but
 * `States.Runtime` and `States.DataLimitExceeded`; `States.TaskFailed` matches any error but
 * `States.Timeout` (and those two); `States.Timeout` matches `States.HeartbeatTimeout` too;
 * `States.Runtime` is never caught.
 */
export function errorMatches(errorEquals: readonly string[], error: string): boolean {
  if (error === STATES.runtime) return false;
  for (const e of errorEquals) {
    if (e === error) return true;
    // As on AWS: States.Timeout names both of a task's timeouts (its own and its heartbeat's).
    if (e === STATES.timeout && error === STATES.heartbeatTimeout) return true;
    const terminal = error === STATES.dataLimitExceeded;
    if (e === STATES.all && !terminal) return true;
    if (e === STATES.taskFailed && !terminal && error !== STATES.timeout && error !== STATES.heartbeatTimeout)
      return true;
  }
  return false;
}
