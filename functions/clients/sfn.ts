import {
  DescribeExecutionCommand,
  type ExecutionStatus,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  ListExecutionsCommand,
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
  type SFNClientConfig,
  StartExecutionCommand,
} from "@aws-sdk/client-sfn";
import type { ExecutionStarter, ExecutionsApi, TaskTokens, TokenOutcome } from "../ports.js";

/** Errors meaning the task is gone: it timed out, finished, or never was. Resolving it is moot. */
const STALE_TASK = new Set(["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"]);

/** Step Functions' limits on SendTaskFailure's fields. */
const MAX_ERROR = 256;
const MAX_CAUSE = 32_768;

/**
 * An SFN client for an endpoint: AWS by default, LocalStack or the embedded engine when
 * `endpoint` is given (`SFN_ENDPOINT`). Credentials default to dummies off AWS.
 */
export function createSfnClient(
  options: { endpoint?: string | undefined; region?: string | undefined } = {},
): SFNClient {
  const config: SFNClientConfig = { region: options.region ?? process.env.AWS_REGION ?? "us-east-1" };
  if (options.endpoint) {
    config.endpoint = options.endpoint;
    if (!process.env.AWS_ACCESS_KEY_ID)
      config.credentials = { accessKeyId: "gangway", secretAccessKey: "gangway" };
  }
  return new SFNClient(config);
}

async function sendOrStale(send: () => Promise<unknown>): Promise<TokenOutcome> {
  try {
    await send();
    return "sent";
  } catch (e) {
    if (STALE_TASK.has((e as { name?: string }).name ?? "")) return "stale";
    throw e;
  }
}

/** Task-token calls through the official SFN client; a gone task answers `stale`, not an error. */
export function createSfnTaskTokens(client: SFNClient): TaskTokens {
  return {
    succeed: (token, output) =>
      sendOrStale(() =>
        client.send(new SendTaskSuccessCommand({ taskToken: token, output: JSON.stringify(output) })),
      ),
    fail: (token, error, cause) =>
      sendOrStale(() =>
        client.send(
          new SendTaskFailureCommand({
            taskToken: token,
            error: error.slice(0, MAX_ERROR),
            cause: cause.slice(0, MAX_CAUSE),
          }),
        ),
      ),
    heartbeat: (token) => sendOrStale(() => client.send(new SendTaskHeartbeatCommand({ taskToken: token }))),
  };
}

/** Starting executions through the official SFN client. */
export function createSfnExecutionStarter(client: SFNClient): ExecutionStarter {
  return {
    async start(r) {
      const out = await client.send(new StartExecutionCommand(r));
      if (!out.executionArn) throw new Error("StartExecution answered without an executionArn");
      return { executionArn: out.executionArn };
    },
  };
}

/** Every history event of an execution, in order, fetching page after page. */
export async function executionHistory(client: SFNClient, executionArn: string): Promise<HistoryEvent[]> {
  const events: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const page = await client.send(
      new GetExecutionHistoryCommand({ executionArn, maxResults: 1000, nextToken }),
    );
    events.push(...(page.events ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  return events;
}

/** Describing and listing executions through the official SFN client. */
export function createSfnExecutionsApi(client: SFNClient): ExecutionsApi {
  return {
    ...createSfnExecutionStarter(client),
    async describe(executionArn) {
      try {
        const d = await client.send(new DescribeExecutionCommand({ executionArn }));
        return {
          executionArn,
          name: d.name ?? "",
          status: d.status ?? "UNKNOWN",
          startDate: d.startDate,
          stopDate: d.stopDate,
          input: d.input,
          output: d.output,
          error: d.error,
          cause: d.cause,
        };
      } catch (e) {
        if ((e as { name?: string }).name === "ExecutionDoesNotExist") return undefined;
        throw e;
      }
    },
    history: (executionArn) => executionHistory(client, executionArn),
    async list(r) {
      const out = await client.send(
        new ListExecutionsCommand({
          stateMachineArn: r.stateMachineArn,
          maxResults: r.maxResults,
          nextToken: r.nextToken,
          statusFilter: r.status as ExecutionStatus | undefined,
        }),
      );
      return {
        executions: (out.executions ?? []).map((e) => ({
          executionArn: e.executionArn ?? "",
          name: e.name ?? "",
          status: e.status ?? "UNKNOWN",
          startDate: e.startDate,
          stopDate: e.stopDate,
        })),
        nextToken: out.nextToken,
      };
    },
  };
}
