import type { ExecutionDetail, ExecutionsApi } from "../../../functions/ports.js";

/** The state machine the API tests' executions run under. */
export const SM = "arn:aws:states:us-east-1:000000000000:stateMachine:gangway-multislice";

/** The ARN of the execution named `name`. */
export const arnOf = (name: string) => `${SM.replace(":stateMachine:", ":execution:")}:${name}`;

/** An error as the SFN client throws it: named by its API error code. */
export const sfnError = (name: string, message = name) => Object.assign(new Error(message), { name });

const STATUSES = ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"];

/**
 * An executions API that refuses what Step Functions refuses (inputs over 256 KiB, names over 80
 * characters, unknown status filters, page tokens it did not give), and counts history reads.
 */
export function fakeExecutions(options: { refuseStart?: Error } = {}) {
  const all = new Map<string, ExecutionDetail>();
  const histories = new Map<string, unknown[]>();
  const historyCalls: string[] = [];
  const checkArn = (arn: string) => {
    if ((arn.split(":").at(-1) ?? "").length > 80)
      throw sfnError("ValidationException", "Value at 'executionArn' failed to satisfy constraint");
  };
  const api: ExecutionsApi = {
    async start(r) {
      if (options.refuseStart) throw options.refuseStart;
      if (Buffer.byteLength(r.input) > 256 * 1024)
        throw sfnError("ValidationException", "Value at 'input' failed to satisfy constraint");
      if (r.name.length > 80) throw sfnError("InvalidName", `Invalid Name: '${r.name}'`);
      const executionArn = arnOf(r.name);
      const existing = all.get(executionArn);
      if (existing) {
        if (existing.status !== "RUNNING" || existing.input !== r.input)
          throw sfnError("ExecutionAlreadyExists");
        return { executionArn };
      }
      all.set(executionArn, {
        executionArn,
        name: r.name,
        status: "RUNNING",
        input: r.input,
        startDate: new Date(1_800_000_000_000),
      });
      return { executionArn };
    },
    async describe(arn) {
      checkArn(arn);
      return all.get(arn);
    },
    async list(r) {
      if (r.status !== undefined && !STATUSES.includes(r.status))
        throw sfnError("ValidationException", "Value at 'statusFilter' failed to satisfy constraint");
      if (r.nextToken !== undefined) throw sfnError("InvalidToken", `Invalid Token: '${r.nextToken}'`);
      const executions = [...all.values()].filter((e) => r.status === undefined || e.status === r.status);
      return { executions: executions.slice(0, r.maxResults) };
    },
    async history(arn) {
      checkArn(arn);
      historyCalls.push(arn);
      return histories.get(arn) ?? [];
    },
  };
  /** Add an execution named `name`. */
  const add = (name: string, detail: Partial<ExecutionDetail> = {}) => {
    const executionArn = arnOf(name);
    all.set(executionArn, { executionArn, name, status: "RUNNING", input: "{}", ...detail });
    return executionArn;
  };
  return { api, all, histories, historyCalls, add };
}

/**
 * Job `jobId` continued once: its first execution ended SUCCEEDED `{continuedAs}`, its second
 * (`<jobId>-c2`) runs, started with `{gangwayContinuation}` as ContinueExecution starts it.
 */
export function addContinuedJob(sfn: ReturnType<typeof fakeExecutions>, jobId: string) {
  const second = arnOf(`${jobId}-c2`);
  const output = JSON.stringify({ continuedAs: second, jobId, counters: { attempts: 3 } });
  const first = sfn.add(jobId, {
    status: "SUCCEEDED",
    input: JSON.stringify({ name: "train" }),
    output,
    startDate: new Date(1_800_000_000_000),
    stopDate: new Date(1_800_000_100_000),
  });
  sfn.add(`${jobId}-c2`, {
    input: JSON.stringify({ gangwayContinuation: { jobId, history: { execution: 1, events: 19_990 } } }),
    startDate: new Date(1_800_000_100_000),
  });
  sfn.histories.set(first, [
    { type: "ExecutionStarted", id: 1 },
    { type: "ExecutionSucceeded", id: 2, executionSucceededEventDetails: { output } },
  ]);
  sfn.histories.set(second, [{ type: "ExecutionStarted", id: 1 }]);
  return { first, second };
}
