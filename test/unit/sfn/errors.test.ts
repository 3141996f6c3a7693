import { describe, expect, it } from "vitest";
import { errorMatches } from "../../../infra/local/sfn/errors.js";

describe("errorMatches: which Retry/Catch entry takes an error (as AWS matches)", () => {
  it.each<[string[], string, boolean]>([
    [["States.ALL"], "Preempted", true],
    [["States.ALL"], "States.Runtime", false],
    [["States.ALL"], "States.DataLimitExceeded", false],
    [["States.TaskFailed"], "Preempted", true],
    [["States.TaskFailed"], "States.Timeout", false],
    [["States.TaskFailed"], "States.HeartbeatTimeout", false],
    // States.Timeout names both of a task's timeouts; States.HeartbeatTimeout only the heartbeat's.
    [["States.Timeout"], "States.Timeout", true],
    [["States.Timeout"], "States.HeartbeatTimeout", true],
    [["States.HeartbeatTimeout"], "States.Timeout", false],
    [["Preempted", "HostLost"], "HostLost", true],
  ])("%j takes %s: %s", (equals, error, want) => {
    expect(errorMatches(equals, error)).toBe(want);
  });
});
